"""Slack credentials, named as Slack's own tooling names them: SLACK_BOT_TOKEN, SLACK_USER_TOKEN."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import SecretStr

from servers._core.errors import MissingAccess

DEFAULT_URL = "https://slack.com/api"
TokenKind = Literal["bot", "user"]
TOKEN_VARS: dict[TokenKind, str] = {"bot": "SLACK_BOT_TOKEN", "user": "SLACK_USER_TOKEN"}


@dataclass(frozen=True)
class SlackSettings:
    base_url: str
    bot_token: SecretStr | None
    user_token: SecretStr | None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SlackSettings:
        bot, user = env.get("SLACK_BOT_TOKEN", "").strip(), env.get("SLACK_USER_TOKEN", "").strip()
        if not bot and not user:
            raise MissingAccess(
                "Slack credentials missing: neither SLACK_BOT_TOKEN nor SLACK_USER_TOKEN is set",
                hint="set SLACK_BOT_TOKEN (xoxb-, scopes channels:history groups:history channels:read "
                "groups:read users:read) and, for slack_search_messages, SLACK_USER_TOKEN (xoxp-, search:read)",
            )
        return cls(
            (env.get("SPYGLASS_SLACK_URL") or DEFAULT_URL).rstrip("/"),
            SecretStr(bot) if bot else None,
            SecretStr(user) if user else None,
        )

    def token(self, kind: TokenKind) -> SecretStr | None:
        return self.bot_token if kind == "bot" else self.user_token
