"""The durable outbox: persisted before sending, retried until acknowledged, drained after a restart."""

from __future__ import annotations

import threading
import time

import pytest

from rosace_core.outbox import Acked, Lost, Outbox, Refused, Sent, content_key


class Receiver:
    """A receiver that can be down, and counts what it got (by key)."""

    def __init__(self):
        self.up = True
        self.got: list[str] = []
        self.jobs: dict[str, str] = {}
        self.lock = threading.Lock()

    def send(self, payload):
        if not self.up:
            raise ConnectionError("receiver down")
        with self.lock:
            self.got.append(payload["n"])
        return Acked({"n": payload["n"]})


def test_an_entry_is_persisted_before_sending_and_drained_after_a_restart(tmp_path):
    rx = Receiver()
    rx.up = False
    box = Outbox(tmp_path / "o.sqlite", "t", rx.send, backoff=0.01)
    eid = box.put("a", {"n": "a"})
    assert box.process(eid) == "pending"
    assert box.get(eid)["attempts"] == 1 and "down" in box.get(eid)["error"]
    assert box.counts()["waiting"] == 1
    box.close()  # the sender "crashes"
    rx.up = True
    acked = []
    box = Outbox(tmp_path / "o.sqlite", "t", rx.send, backoff=0.01, on_ack=lambda p, r: acked.append((p["n"], r)))
    time.sleep(0.1)  # past the entry's back-off (0.01 s, +-10 %): on a fast machine the restart comes sooner
    assert box.drain_once() == 0
    assert rx.got == ["a"] and acked == [("a", {"n": "a"})]
    assert box.counts()["acked"] == 1 and box.counts()["waiting"] == 0
    box.close()


def test_back_off_doubles_up_to_the_cap(tmp_path):
    box = Outbox(tmp_path / "o.sqlite", "t", lambda p: Acked(), backoff=2.0, max_backoff=10.0)
    delays = [box._delay(n) for n in (1, 2, 3, 4, 5)]
    assert 1.8 <= delays[0] <= 2.2 and 3.6 <= delays[1] <= 4.4 and 7.2 <= delays[2] <= 8.8
    assert 9.0 <= delays[3] <= 11.0 and 9.0 <= delays[4] <= 11.0
    box.close()


def test_the_same_key_is_one_entry_and_an_acknowledged_key_is_not_sent_again(tmp_path):
    rx = Receiver()
    box = Outbox(tmp_path / "o.sqlite", "t", rx.send)
    first = box.put("k", {"n": "1"})
    assert box.put("k", {"n": "2"}) == first  # still waiting: the same entry, payload refreshed
    box.drain_once()
    assert rx.got == ["2"]
    assert box.put("k", {"n": "3"}) is None  # delivered: nothing to do
    assert box.put("k2", {"n": "3"}) not in (None, first)
    box.drain_once()
    assert rx.got == ["2", "3"]
    box.close()


def test_a_two_phase_hand_off_is_acknowledged_only_when_the_receiver_finished_and_resent_when_lost(tmp_path):
    jobs: dict[str, str] = {}
    sent = []

    def send(p):
        sent.append(p["n"])
        jid = f"job{len(sent)}"
        jobs[jid] = "running"
        return Sent(jid)

    def check(p, token):
        if token not in jobs:
            return Lost("unknown job")
        return Acked(token) if jobs[token] == "done" else Sent(token)

    box = Outbox(tmp_path / "o.sqlite", "t", send, check=check, check_every=0.0)
    eid = box.put("x", {"n": "x"})
    assert box.process(eid) == "sent"
    assert box.process(eid) == "sent"  # still running
    jobs.clear()  # the receiver restarted: its jobs are gone
    assert box.process(eid) == "sent" and sent == ["x", "x"]
    jobs["job2"] = "done"
    assert box.process(eid) == "acked" and box.get(eid)["result"] == '"job2"'
    box.close()


def test_a_permanent_refusal_is_not_retried(tmp_path):
    def send(p):
        raise Refused("HTTP 422: no such frame")

    box = Outbox(tmp_path / "o.sqlite", "t", send)
    eid = box.put("r", {})
    assert box.process(eid) == "failed"
    assert box.due() == [] and box.counts()["failed"] == 1 and "422" in box.counts()["last_error"]
    box.close()


def test_threads_putting_and_draining_together_deliver_each_entry_once(tmp_path):
    rx = Receiver()
    box = Outbox(tmp_path / "o.sqlite", "t", rx.send).start()

    def producer(i):
        for j in range(10):
            eid = box.put(f"{i}-{j}", {"n": f"{i}-{j}"})
            box.process(eid)  # a synchronous try racing the worker thread

    threads = [threading.Thread(target=producer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    box.stop()
    box.drain_once()
    assert sorted(rx.got) == sorted(f"{i}-{j}" for i in range(8) for j in range(10))
    assert box.counts()["acked"] == 80
    box.close()


def test_content_key_changes_with_the_file_content(tmp_path):
    f = tmp_path / "a.fits"
    f.write_bytes(b"one")
    k1 = content_key("obs1", files=[str(f)])
    f.write_bytes(b"two")
    assert content_key("obs1", files=[str(f)]) != k1
    assert k1.startswith("obs1:")


@pytest.mark.parametrize("bad", [0, 3])
def test_entries_given_up_after_max_attempts_stay_visible(tmp_path, bad):
    def send(p):
        raise ConnectionError("down")

    box = Outbox(tmp_path / "o.sqlite", "t", send, backoff=0.0, max_attempts=bad)
    eid = box.put("z", {})
    for _ in range(3):
        box.process(eid)
    assert box.get(eid)["state"] == ("failed" if bad else "pending")
    box.close()


def test_when_one_entry_gets_through_the_others_waiting_out_their_back_off_go_at_once(tmp_path):
    rx = Receiver()
    rx.up = False
    box = Outbox(tmp_path / "o.sqlite", "t", rx.send, backoff=100.0, max_backoff=100.0)
    old = [box.put(f"old{i}", {"n": f"old{i}"}) for i in range(3)]
    for eid in old:
        box.process(eid)
    assert box.due() == []  # all backing off for ~100 s
    rx.up = True
    box.process(box.put("new", {"n": "new"}))  # a new hand-off gets through: the receiver is back
    assert sorted(box.due()) == sorted(old)
    box.drain_once()
    assert sorted(rx.got) == ["new", "old0", "old1", "old2"]
    box.close()


def test_a_newer_hand_off_of_the_same_observation_supersedes_the_waiting_one(tmp_path):
    rx = Receiver()
    rx.up = False
    box = Outbox(tmp_path / "o.sqlite", "t", rx.send, backoff=0.0)
    old = box.put("obs1:aaaa", {"n": "without dark"})
    other = box.put("obs10:cccc", {"n": "another observation"})
    box.process(old)
    new = box.put("obs1:bbbb", {"n": "with dark"}, supersedes="obs1:")
    assert box.get(old)["state"] == "superseded" and box.get(other)["state"] == "pending"
    rx.up = True
    box.process(old)  # a late try of the old one changes nothing
    box.drain_once()
    assert sorted(rx.got) == ["another observation", "with dark"]
    assert box.get(old)["state"] == "superseded" and box.get(new)["state"] == "acked"
    assert box.counts()["superseded"] == 1 and box.counts()["waiting"] == 0
    box.close()
