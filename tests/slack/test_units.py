"""Pure Slack pieces as tables: the channel scope, markup rendering, and the error mapping."""

from __future__ import annotations

import pytest

from servers._core.cache import TTLCache
from servers._core.errors import MissingAccess, NotFound, RateLimited, UpstreamError
from servers.slack.client import slack_failure
from servers.slack.models import Channel, plain_text
from servers.slack.scope import SlackScope

PUBLIC = Channel("C0INC1420", "inc-checkout")
RANDOM = Channel("C0RANDOM00", "random")
PRIVATE = Channel("G0SECPRIV0", "sec-private", is_private=True)
DM = Channel("D0ALICEBOB", is_im=True)
GROUP_DM = Channel("G0MPIM0001", "mpdm-alice--bob-1", is_mpim=True, is_private=True)


@pytest.mark.parametrize(
    ("entries", "channel", "expected"),
    [
        (None, PUBLIC, True),  # no channel scope: public channels are readable
        (None, PRIVATE, False),  # ... but never a private channel
        (None, DM, False),  # ... nor a DM
        (["#inc-*"], PUBLIC, True),
        (["#inc-*"], RANDOM, False),
        (["C0RANDOM00"], RANDOM, True),
        (["inc-checkout"], PUBLIC, True),  # the leading # is optional
        (["#INC-CHECKOUT"], PUBLIC, True),  # Slack names are lowercase
        (["#sec-*"], PRIVATE, False),  # a glob never admits a private channel
        (["#*"], PRIVATE, False),
        (["#sec-private"], PRIVATE, True),  # the exact name does
        (["G0SECPRIV0"], PRIVATE, True),
        (["#*"], DM, False),
        (["D0ALICEBOB"], DM, True),  # DMs only by id
        (["#mpdm-alice--bob-1"], GROUP_DM, False),
        (["G0MPIM0001"], GROUP_DM, True),
        ([], PUBLIC, False),  # an empty list means nothing
        (["#random", "#inc-?heckout"], PUBLIC, True),  # any one pattern admits; ? is one character
        (["#inc-[bc]heckout"], PUBLIC, True),
        (["#inc-[!c]heckout"], PUBLIC, False),
        (["#inc"], PUBLIC, False),  # a pattern matches the whole name, not a prefix
        (["  #random  ", ""], RANDOM, True),  # entries are trimmed; blanks are ignored
        (["#inc.checkout"], PUBLIC, False),  # regex characters in a name are literal
    ],
)
def test_read_scope_admits_private_channels_and_dms_only_when_listed(entries, channel, expected) -> None:
    assert SlackScope(entries).readable(channel) is expected


@pytest.mark.parametrize(
    ("entries", "channel", "expected"),
    [
        (None, PUBLIC, False),  # no scope: posting nowhere
        ([], PUBLIC, False),
        (["#inc-*"], PUBLIC, False),  # globs do not count for posting
        (["#inc-checkout"], PUBLIC, True),
        (["C0INC1420"], PUBLIC, True),
        (["#sec-private"], PRIVATE, True),
        (["D0ALICEBOB"], DM, True),
        (["#mpdm-alice--bob-1"], GROUP_DM, False),
    ],
)
def test_posting_needs_the_channel_listed_explicitly(entries, channel, expected) -> None:
    assert SlackScope(entries).postable(channel) is expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ping <@U1>", "ping @alice"),
        ("ping <@U9|someone>", "ping @someone"),
        ("see <#C1|inc-checkout>", "see #inc-checkout"),
        ("<!here> deploy", "@here deploy"),
        ("<!subteam^S1|@oncall> look", "@@oncall look"),
        ("<https://docs.google.com/d/x|Runbook>", "Runbook (https://docs.google.com/d/x)"),
        ("<https://example.com>", "https://example.com"),
        ("a &lt; b &amp;&amp; c &gt; d", "a < b && c > d"),
    ],
)
def test_slack_markup_renders_as_plain_text_with_names(raw: str, expected: str) -> None:
    assert plain_text(raw, {"U1": "alice"}, {}) == expected


@pytest.mark.parametrize(
    ("body", "kind", "error_type", "says"),
    [
        ({"ok": False, "error": "missing_scope", "needed": "groups:history", "provided": "channels:read"}, "bot",
         MissingAccess, "lacks the scope 'groups:history'"),
        ({"ok": False, "error": "invalid_auth"}, "bot", MissingAccess, "SLACK_BOT_TOKEN"),
        ({"ok": False, "error": "not_authed"}, "user", MissingAccess, "SLACK_USER_TOKEN"),
        ({"ok": False, "error": "not_allowed_token_type"}, "bot", MissingAccess, "does not accept the bot token"),
        ({"ok": False, "error": "not_in_channel"}, "bot", MissingAccess, "not a member"),
        ({"ok": False, "error": "channel_not_found"}, "bot", NotFound, "channel_not_found"),
        ({"ok": False, "error": "thread_not_found"}, "bot", NotFound, "thread_not_found"),
        ({"ok": False, "error": "ratelimited"}, "bot", RateLimited, "rate limited"),
        ({"ok": False, "error": "fatal_error"}, "bot", UpstreamError, "fatal_error"),
        ("not json", "bot", UpstreamError, "malformed"),
    ],
)
def test_ok_false_bodies_map_to_typed_errors(body, kind, error_type, says: str) -> None:
    err = slack_failure("conversations.history", body, kind)
    assert isinstance(err, error_type) and says in err.render()


def test_the_ttl_cache_forgets_entries_after_their_ttl() -> None:
    now = [0.0]
    cache: TTLCache[str, int] = TTLCache(10, clock=lambda: now[0])
    cache.put("a", 1)
    now[0] = 9.9
    assert cache.get("a") == 1
    now[0] = 10.1
    assert cache.get("a") is None

