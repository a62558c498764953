from core.clock import Clock


def test_timers_fire_in_time_order_and_only_once():
    clock = Clock(0)
    clock.set_timer("b", 20)
    clock.set_timer("a", 10)
    assert clock.advance_to(5) == ()
    fired = clock.advance_to(25)
    assert [(t.name, t.ts_event) for t in fired] == [("a", 10), ("b", 20)]
    assert clock.now == 25
    assert clock.advance_to(30) == ()


def test_rescheduling_and_cancel():
    clock = Clock(0)
    clock.set_timer("x", 10)
    clock.set_timer("x", 50)  # replaces
    clock.set_timer("y", 20)
    clock.cancel_timer("y")
    assert clock.advance_to(40) == ()
    assert [t.name for t in clock.advance_to(50)] == ["x"]
    assert clock.next_timer() is None


def test_time_never_moves_backwards():
    clock = Clock(100)
    clock.advance_to(50)
    assert clock.now == 100
