"""Publishing's services, by concern: media (the library and WeChat's material), drafts (articles as WeChat
drafts), news (news pushes: account-type rules, mass sends, previews, WeChat's job reports), publish (发布) and
stats (WeChat's statistics)."""
