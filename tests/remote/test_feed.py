"""The hand-written server-sent events parser of the feed follower."""

from __future__ import annotations

import pytest

from twofold.remote.feed import MAX_EVENT_BYTES, Event, EventParser, FeedProtocolError


def test_events_split_across_chunks_are_put_together() -> None:
    parser = EventParser()
    assert parser.feed(b"id: 4\nevent: revo") == []
    assert parser.feed(b'cation\ndata: {"seq":4}\n') == []
    assert parser.feed(b"\n") == [Event("revocation", '{"seq":4}')]


def test_crlf_comments_multiline_data_and_unknown_fields() -> None:
    stream = b": a comment\r\nretry: 10\r\nevent: hello\r\ndata: a\r\ndata:b\r\nfoo: x\r\n\r\n"
    assert EventParser().feed(stream) == [Event("hello", "a\nb")]


def test_an_event_without_data_is_not_dispatched_and_the_default_name_is_message() -> None:
    assert EventParser().feed(b"event: x\n\ndata: 1\n\n") == [Event("message", "1")]


@pytest.mark.parametrize(
    "stream",
    [b"data: " + b"x" * (MAX_EVENT_BYTES + 1), b"data: \xff\n\n"],
    ids=["endless-line", "not-utf8"],
)
def test_a_broken_stream_is_a_protocol_error(stream: bytes) -> None:
    """Bounded memory: a line that never ends is refused, not buffered forever."""
    with pytest.raises(FeedProtocolError):
        EventParser().feed(stream)


def test_many_data_lines_cannot_grow_one_event_without_bound() -> None:
    parser = EventParser()
    line = b"data: " + b"x" * 1000 + b"\n"
    for _ in range(MAX_EVENT_BYTES // 1000):
        parser.feed(line)
    with pytest.raises(FeedProtocolError):
        parser.feed(line)
