"""The proof's claim that exactly one MN serves: one listener on its port, one live heartbeat."""

from skylift.upgrade.proof import Proof


def test_one_listener_and_one_heartbeat_is_proven():
    assert Proof(mn_listeners=[100], live_heartbeats=["mn (pid 100, running, now)"]).ok


def test_two_listeners_or_two_heartbeats_fail_the_proof_and_say_so():
    two_listening = Proof(mn_listeners=[100, 200], live_heartbeats=["a"])
    two_beating = Proof(mn_listeners=[100], live_heartbeats=["a", "b"])
    none_serving = Proof(mn_listeners=[], live_heartbeats=[])

    assert not two_listening.ok and not two_beating.ok and not none_serving.ok
    assert "2 processes listen on the MN port (pids 100, 200)" in two_listening.failures()[0]
    assert two_beating.failures() == ["2 MN heartbeats are alive, not one: a; b"]
    assert len(none_serving.failures()) == 2


def test_not_looked_at_is_not_a_failure():
    assert Proof().ok and Proof().failures() == []


def test_an_ha_cloud_proves_every_member_heartbeating():
    three = ["mn-1 (pid 1, running, now)", "mn-2 (pid 2, running, now)",
             "mn-3 (pid 3, running, now)"]
    assert Proof(mn_listeners=[1], live_heartbeats=three, expected_mns=3).ok
    two = Proof(mn_listeners=[1], live_heartbeats=three[:2], expected_mns=3)
    assert two.failures() == [f"2 MN heartbeats are alive, not 3: {three[0]}; {three[1]}"]
