"""Services that change the conversation set-up: auto-reply rules, menus, journeys and their steps, score rules.

Each save sets the given fields, validates the row as the admin's form does (the model's `clean` and constraints:
a DjangoValidationError naming the field, a 400 in the API) and writes it; auto-reply changes also drop the
callback's cached rules of this process.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from django.db import models, transaction

from .models import AutoReplyRule, Journey, JourneyStep, Menu, ScoreRule

M = TypeVar("M", bound=models.Model)


def _save(instance: M, data: Mapping[str, Any]) -> M:
    creating = instance.pk is None
    changed = [name for name, value in data.items() if creating or getattr(instance, name) != value]
    for name, value in data.items():
        setattr(instance, name, value)
    instance.full_clean()
    if creating:
        instance.save()
    elif changed:
        columns = {f.name for f in instance._meta.concrete_fields}
        instance.save(update_fields=[*changed, *(["updated_at"] if "updated_at" in columns else [])])
    return instance


def _rules_changed() -> None:
    from .replies import rules_cache_clear

    transaction.on_commit(rules_cache_clear)


@transaction.atomic
def auto_reply_save(*, rule: AutoReplyRule | None = None, data: Mapping[str, Any]) -> AutoReplyRule:
    rule = _save(rule or AutoReplyRule(), data)
    _rules_changed()
    return rule


@transaction.atomic
def auto_reply_delete(*, rule: AutoReplyRule) -> None:
    rule.delete()
    _rules_changed()


def menu_save(*, menu: Menu | None = None, data: Mapping[str, Any]) -> Menu:
    """The buttons are validated as WeChat validates them (and stored in WeChat's form); publish separately."""
    return _save(menu or Menu(), data)


def menu_delete(*, menu: Menu) -> None:
    menu.delete()


def journey_save(*, journey: Journey | None = None, data: Mapping[str, Any]) -> Journey:
    return _save(journey or Journey(), data)


def journey_delete(*, journey: Journey) -> None:
    journey.delete()


def journey_step_save(*, step: JourneyStep | None = None, data: Mapping[str, Any]) -> JourneyStep:
    return _save(step or JourneyStep(), data)


def journey_step_delete(*, step: JourneyStep) -> None:
    step.delete()


def score_rule_save(*, rule: ScoreRule | None = None, data: Mapping[str, Any]) -> ScoreRule:
    return _save(rule or ScoreRule(), data)


def score_rule_delete(*, rule: ScoreRule) -> None:
    rule.delete()
