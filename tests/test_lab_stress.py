"""The stress drill's promise is VRRP's: arithmetic, no lab needed."""

from vip_lab.faults import SCHEDULING_ALLOWANCE_S, Stress
from vip_stack.settings import master_down_interval

FAST_ADVERT = 0.2
FAST_BACKUP_MDI = master_down_interval(3, FAST_ADVERT, 90)


def test_a_stall_and_one_lost_advert_are_the_longest_silence_with_spaced_loss():
    stress = Stress(stall_ms=150, loss_percent=5)
    assert stress.longest_silence_s(FAST_ADVERT) == 0.15 + 2 * FAST_ADVERT


def test_random_loss_bounds_no_silence_and_promises_no_stillness():
    stress = Stress(stall_ms=0, loss_percent=1, advert_loss="random")
    assert stress.longest_silence_s(1) is None
    assert not stress.keeps_holder(1, master_down_interval(2, 1, 90))


def test_the_fast_profile_drill_can_promise_no_move_with_150_ms_stalls():
    assert round(FAST_BACKUP_MDI, 2) == 0.73
    assert Stress(stall_ms=150, loss_percent=5).keeps_holder(FAST_ADVERT, FAST_BACKUP_MDI)


def test_a_250_ms_stall_next_to_a_lost_advert_leaves_too_little_margin_at_0_2_s():
    # 0.25 + 0.4 = 0.65 s of silence: 80 ms short of the takeover, less than
    # the scheduler may add on a busy machine.
    stress = Stress(stall_ms=250, loss_percent=5)
    silence = stress.longest_silence_s(FAST_ADVERT)
    assert silence is not None and FAST_BACKUP_MDI - silence < SCHEDULING_ALLOWANCE_S
    assert not stress.keeps_holder(FAST_ADVERT, FAST_BACKUP_MDI)


def test_the_labs_default_bad_day_cannot_move_the_vip_at_one_second_adverts():
    assert Stress().keeps_holder(1, master_down_interval(2, 1, 90))
