"""Calibration's choices on a simulated plane whose modes have known speeds and noisy timings (a fake clock):
it finds the fastest mode that gives the same values, keeps the points it computes only from such modes, its
cost stays within its share of the work, small grids skip it, and a sustained drop of the measured rate makes the
plane calibrate again."""
import numpy as np
import pytest
import torch

from landscape.engine.calibration import batch_candidates, calibrate, stable_ratio
from test_plane import plane_inputs
from landscape.engine.plane import PlaneEvaluator


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class FakeEvaluator:
    device = torch.device("cpu")
    stream = None
    task = "classification"
    compile = False

    def __init__(self, n=2000, batch=1024, tune=False):
        self.n, self.batch_size, self.tune_batch = n, batch, tune

    def transforms(self):
        return {}

    def set_batch_size(self, b):
        self.batch_size = b


class FakePlane:
    """Points cost 1/rate seconds of the fake clock in each mode, times lognormal noise; values are exact
    functions of the coordinates, except in the modes listed in ``rounds_off``."""

    def __init__(self, rates, clock, noise=0.15, seed=0, rounds_off=(), batch_rates=None, batch_off=()):
        self.rates, self.clock, self.noise = rates, clock, noise
        self.rng = np.random.default_rng(seed)
        self.rounds_off, self.batch_rates, self.batch_off = set(rounds_off), batch_rates or {}, set(batch_off)
        self.ev = FakeEvaluator(tune=bool(batch_rates))
        self.numel_moved = 10_000
        self.batch_mode, self.points_per_batch, self._stacking_checked = "one", 1, False
        self.evaluated = 0

    def _evaluate(self, a, b):
        mode = (self.batch_mode, self.points_per_batch)
        rate = self.rates.get(mode, self.rates[("one", 1)] * 0.5) * self.batch_rates.get(self.ev.batch_size, 1.0)
        self.clock.now += len(a) / rate * float(np.exp(self.rng.normal(0, self.noise)))
        self.evaluated += len(a)
        off = 1e-7 if (mode in self.rounds_off or self.ev.batch_size in self.batch_off) else 0.0
        return np.asarray(a) + np.asarray(b) + off, np.zeros(len(a))


RATES = {("one", 1): 100.0, ("vmap", 2): 150.0, ("vmap", 4): 240.0, ("vmap", 8): 300.0, ("vmap", 16): 260.0,
         ("vmap", 32): 120.0, ("threads", 2): 170.0}


@pytest.mark.parametrize("seed", range(40))
def test_finds_the_fastest_mode_under_noisy_timings_within_its_share(seed, monkeypatch):
    monkeypatch.setattr("landscape.engine.calibration.cpu_threads", lambda: 2)
    clock = Clock()
    plane = FakePlane(RATES, clock, noise=0.1, seed=seed)
    expected = 100_000
    mode = calibrate(plane, np.linspace(-1, 1, 50), np.zeros(50), expected=expected, clock=clock)
    assert RATES[mode] >= 0.9 * max(RATES.values()), mode  # within 10 % of the best fixed setting
    assert clock.now <= 0.05 * expected / RATES[("one", 1)] * 1.1  # its share of the work (one-point rate)
    assert plane.calibrated_rate == pytest.approx(RATES[mode], rel=0.3)


def test_a_mode_that_rounds_differently_is_never_chosen(monkeypatch):
    monkeypatch.setattr("landscape.engine.calibration.cpu_threads", lambda: 2)
    clock = Clock()
    plane = FakePlane(RATES, clock, noise=0.05, rounds_off=[("vmap", p) for p in (2, 4, 8, 16, 32)])
    sizes = []
    real = plane._evaluate
    plane._evaluate = lambda a, b: sizes.append((plane.batch_mode, len(a))) or real(a, b)
    assert calibrate(plane, np.linspace(-1, 1, 50), np.zeros(50), expected=100_000, clock=clock) == ("threads", 2)
    assert [s for s in sizes if s[0] == "vmap"] == [("vmap", 2)]  # two points stacked tell: no stack of 16 tried


@pytest.mark.parametrize("seed", range(6))
def test_large_stacks_are_found_without_timing_the_small_ones(seed, monkeypatch):
    """A tiny model: a stack's forward costs about as much as one point's, so stacks gain with size up to a
    point, and stacks of 2 or 4 lose to one at a time (their stacking costs more than it spreads)."""
    monkeypatch.setattr("landscape.engine.calibration.cpu_threads", lambda: 2)
    rates = {("one", 1): 100.0, ("vmap", 2): 50.0, ("vmap", 4): 90.0, ("vmap", 8): 150.0, ("vmap", 16): 200.0,
             ("vmap", 32): 300.0, ("vmap", 64): 350.0, ("vmap", 128): 250.0, ("threads", 2): 110.0}
    clock = Clock()
    plane = FakePlane(rates, clock, noise=0.1, seed=seed)
    tried = []
    real = plane._evaluate

    def spy(a, b):
        tried.append((plane.batch_mode, plane.points_per_batch))
        return real(a, b)

    plane._evaluate = spy
    mode = calibrate(plane, np.linspace(-1, 1, 50), np.zeros(50), expected=100_000, clock=clock)
    assert rates[mode] >= 0.9 * 350.0, mode
    # two points stacked once, to check their rounding, and no small stack timed
    assert tried.count(("vmap", 2)) == 1 and not {("vmap", 4), ("vmap", 8)} & set(tried)


def test_small_grids_skip_it():
    clock = Clock()
    plane = FakePlane(RATES, clock, noise=0.0)
    a = np.linspace(-1, 1, 9)
    out = np.zeros(9), np.zeros(9), np.zeros(9, bool)
    assert calibrate(plane, a, np.zeros(9), expected=9, clock=clock, out=out) == ("one", 1)
    assert plane.evaluated == 5  # the warm-up point and the four reference points only, and they are kept
    assert out[2].tolist() == [True] * 5 + [False] * 4 and np.array_equal(out[0][:5], a[:5])


@pytest.mark.parametrize("seed", range(4))
def test_the_points_it_computes_are_kept_only_from_ways_that_give_the_same_values(seed, monkeypatch):
    """The chunk's points are computed by the timed evaluations: those of a way that rounds differently (here
    every stack) are thrown away, the others kept, and each point is computed once unless thrown away."""
    monkeypatch.setattr("landscape.engine.calibration.cpu_threads", lambda: 2)
    clock = Clock()
    plane = FakePlane(RATES, clock, noise=0.1, seed=seed, rounds_off=[("vmap", p) for p in (2, 4, 8, 16, 32)])
    a, b = np.linspace(-1, 1, 400), np.linspace(0.5, -0.5, 400)
    out = np.full(400, np.nan), np.full(400, np.nan), np.zeros(400, bool)
    assert calibrate(plane, a, b, expected=400, clock=clock, out=out) == ("threads", 2)
    loss, _, done = out
    assert 40 < done.sum() < 400
    np.testing.assert_array_equal(loss[done], (a + b)[done])  # exact: one point's values, none of a stack's
    assert np.isnan(loss[~done]).all()


def test_fast_stacks_do_not_pay_for_slower_candidates(monkeypatch):
    """Stacks 4x as fast as one at a time: the time they save is no budget for threads, which on two cores
    cannot be more than twice as fast, nor for larger stacks and batch sizes, whose points count at the best
    speed found; what it costs beyond that speed stays within its share."""
    monkeypatch.setattr("landscape.engine.calibration.cpu_threads", lambda: 2)
    clock = Clock()
    rates = {("one", 1): 100.0, ("vmap", 16): 400.0, ("vmap", 32): 420.0, ("threads", 2): 30.0}
    plane = FakePlane(rates, clock, noise=0.05, batch_rates={1024: 1.0, 64: 0.3})
    tried = []
    real = plane._evaluate

    def spy(a, b):
        tried.append((plane.batch_mode, plane.ev.batch_size))
        return real(a, b)

    plane._evaluate = spy
    out = np.zeros(600), np.zeros(600), np.zeros(600, bool)
    mode = calibrate(plane, np.linspace(-1, 1, 600), np.zeros(600), expected=600, clock=clock, out=out)
    assert mode[0] == "vmap" and ("threads", 1024) not in tried and ("vmap", 1024) in tried
    # what it cost beyond the chosen way's time for the points it computed: within its share
    assert clock.now - out[2].sum() / rates[mode] <= 0.05 * 600 / 100.0 * 1.5


def test_slower_modes_are_not_chosen_by_a_lucky_timing(monkeypatch):
    """Every candidate is slower than one at a time: with noisy timings, one at a time is still kept."""
    monkeypatch.setattr("landscape.engine.calibration.cpu_threads", lambda: 2)
    slower = {k: (v if k == ("one", 1) else 85.0) for k, v in RATES.items()}
    chosen = []
    for seed in range(12):
        clock = Clock()
        chosen.append(calibrate(FakePlane(slower, clock, noise=0.15, seed=seed), np.linspace(-1, 1, 50),
                                np.zeros(50), expected=100_000, clock=clock))
    assert chosen.count(("one", 1)) == 12, chosen


def test_batch_sizes_with_the_same_values(monkeypatch):
    monkeypatch.setattr("landscape.engine.calibration.cpu_threads", lambda: 1)
    clock = Clock()
    plane = FakePlane({("one", 1): 100.0}, clock, noise=0.1, batch_rates={1024: 1.0, 512: 1.5, 256: 1.8, 128: 1.2},
                      batch_off={256})
    calibrate(plane, np.linspace(-1, 1, 50), np.zeros(50), expected=100_000, clock=clock)
    assert plane.ev.batch_size == 512  # 256 is faster but rounds differently
    assert batch_candidates(2000, 1024) == [64, 128, 256, 512, 2000] and batch_candidates(100, 50) == [64, 100]


def test_stable_ratio_waits_for_agreeing_rounds():
    times = iter([1.0, 0.5, 1.0, 0.2] + [1.0, 0.5] * 4)  # one outlier round, then agreement
    assert stable_ratio(lambda: next(times), lambda: next(times), lambda: False) == 2.0
    assert stable_ratio(lambda: 1.0, lambda: 1.0, lambda: True) is None  # no time for even one round


def test_a_sustained_drop_calibrates_again():
    ev, c, d1, d2 = plane_inputs("mlp")
    plane = PlaneEvaluator(ev, c, d1, d2, "auto")
    plane.auto, plane.calibrated_rate = False, 1000.0
    plane._observe(100, 1.0)  # 100 points/s: one slow call is not enough
    assert not plane.auto
    plane._observe(900, 1.0)  # back to speed: the count starts again
    plane._observe(100, 1.0)
    assert not plane.auto
    plane._observe(100, 1.0)
    assert plane.auto and plane.revisions == 1 and plane.points_done == 1200
    a, b = np.linspace(-1, 1, 7), np.zeros(7)
    ref = PlaneEvaluator(ev, c, d1, d2, 1).evaluate_points(a, b)
    np.testing.assert_array_equal(plane.evaluate_points(a, b)[0], ref[0])  # calibrated again: the same values
    assert plane.calibrated_rate is not None


def test_points_shorter_than_a_millisecond_are_not_tried_on_threads_or_smaller_batches(monkeypatch):
    """Such points are python's overhead per operation mostly, which concurrent threads share under the GIL and
    smaller batches multiply; a larger batch (one for all 2,000 samples) is still tried."""
    monkeypatch.setattr("landscape.engine.calibration.cpu_threads", lambda: 2)
    for rate, short in ((5000.0, True), (500.0, False)):
        clock = Clock()
        plane = FakePlane({("one", 1): rate, ("threads", 2): 1.5 * rate}, clock, noise=0.05,
                          batch_rates={1024: 1.0, 512: 1.2, 2000: 1.1})
        modes = []
        real = plane._evaluate
        plane._evaluate = lambda a, b: modes.append((plane.batch_mode, plane.ev.batch_size)) or real(a, b)
        calibrate(plane, np.linspace(-1, 1, 50), np.zeros(50), expected=10 ** 6, clock=clock)
        batches = {b for _, b in modes}
        assert any(m == "threads" for m, _ in modes) != short, rate
        assert 2000 in batches and (512 in batches) != short, (rate, batches)
