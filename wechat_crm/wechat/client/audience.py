"""Followers, their profiles and WeChat's tags. Each method is one call (raises the typed errors of errors.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import messages


@dataclass(frozen=True, slots=True)
class OpenidPage:
    """One page of openids (the followers, or a tag's members) and where the next page starts ("" at the end)."""

    openids: list[str] = field(default_factory=list)
    next_openid: str = ""
    total: int | None = None


class AudienceMixin:
    # --- followers and profiles ---------------------------------------------------------------------------------
    def followers_page(self, next_openid: str = "") -> OpenidPage:
        """One page (up to 10,000) of the account's followers, from `next_openid` ("" from the start)."""
        result = self.get("user/get", params={"next_openid": next_openid} if next_openid else {})
        return _openid_page(result)

    def users_info(self, openids: Sequence[str], *, lang: str = "zh_CN") -> list[dict[str, Any]]:
        """WeChat's profiles of up to 100 openids (WeChat's batch profile call), each as WeChat describes it."""
        result = self.post("user/info/batchget", data=messages.users_batch(openids, lang=lang))
        return list((result or {}).get("user_info_list") or []) if isinstance(result, dict) else []

    def user_remark_set(self, openid: str, remark: str) -> None:
        """Sets the remark WeChat shows the account's team for one follower ("" clears it)."""
        self.post("user/info/updateremark", data=messages.user_remark(openid=openid, remark=remark))

    # --- tags ------------------------------------------------------------------------------------------------------
    def tags_list(self) -> list[dict[str, Any]]:
        """The account's tags: {"id", "name", "count"} each."""
        result = self.get("tags/get")
        return list((result or {}).get("tags") or []) if isinstance(result, dict) else []

    def tag_create(self, name: str) -> int:
        """Creates a tag on WeChat; its id. A name WeChat has already is refused (errcode 45157)."""
        result = self.post("tags/create", data={"tag": {"name": name}})
        return int(result["tag"]["id"])

    def tag_rename(self, tag_id: int, name: str) -> None:
        """Renames a tag on WeChat."""
        self.post("tags/update", data={"tag": {"id": tag_id, "name": name}})

    def tag_delete(self, tag_id: int) -> None:
        """Deletes a tag on WeChat (its followers lose it)."""
        self.post("tags/delete", data={"tag": {"id": tag_id}})

    def tag_members_page(self, tag_id: int, next_openid: str = "") -> OpenidPage:
        """One page of the followers with a tag."""
        data: dict[str, Any] = {"tagid": tag_id}
        if next_openid:
            data["next_openid"] = next_openid
        return _openid_page(self.post("user/tag/get", data=data))

    def tag_users(self, tag_id: int, openids: Sequence[str]) -> None:
        """Adds the tag to up to 50 followers."""
        self.post("tags/members/batchtagging", data=messages.tag_members(tag_id=tag_id, openids=openids))

    def untag_users(self, tag_id: int, openids: Sequence[str]) -> None:
        """Removes the tag from up to 50 followers."""
        self.post("tags/members/batchuntagging", data=messages.tag_members(tag_id=tag_id, openids=openids))


def _openid_page(result: Any) -> OpenidPage:
    result = result if isinstance(result, dict) else {}
    total = result.get("total")
    return OpenidPage(
        openids=list((result.get("data") or {}).get("openid") or []),
        next_openid=result.get("next_openid") or "",
        total=int(total) if total is not None else None,
    )
