"""Market conditions: enough features, finite after warm-up, strictly causal, correct indicators."""

from __future__ import annotations

import numpy as np
import pytest

from ludus.data.bars import Bars
from ludus.data.conditions import FEATURES, compute_conditions, feature_names
from ludus.errors import InputError


def replace(bars: Bars, **arrays) -> Bars:
    fields = {k: getattr(bars, k) for k in ("timestamps", "open", "high", "low", "close", "volume")}
    return Bars(bars.symbol, bars.interval, **(fields | arrays))


def perturb_after(bars: Bars, t: int, seed: int) -> Bars:
    """Different prices and volumes strictly after bar t (timestamps kept)."""
    rng = np.random.default_rng(seed)
    n = len(bars)
    factor = np.ones(n)
    factor[t + 1 :] = np.exp(np.cumsum(rng.normal(0.0, 0.03, n - t - 1)))
    noise = np.ones(n)
    noise[t + 1 :] = rng.uniform(0.5, 2.0, n - t - 1)
    after = np.arange(n) > t
    close = bars.close * factor
    open_ = bars.open * factor * np.where(noise > 1.5, 1.01, 1.0)
    high = np.where(after, np.maximum(bars.high * factor * 1.002, close), bars.high)
    low = np.where(after, np.minimum(bars.low * factor * 0.998, close), bars.low)
    return replace(bars, open=open_, close=close, high=high, low=low, volume=bars.volume * noise)


def perturb_context_after(ctx: Bars, when: np.datetime64, seed: int) -> Bars:
    rng = np.random.default_rng(seed)
    later = ctx.timestamps > when
    factor = np.where(later, rng.uniform(0.5, 1.5, len(ctx)), 1.0)
    return replace(
        ctx,
        open=ctx.open * factor,
        high=ctx.high * factor,
        low=ctx.low * factor,
        close=ctx.close * factor,
        volume=ctx.volume * factor,
    )


def test_feature_set(sample_bars):
    cond = compute_conditions(sample_bars)
    assert cond.n_features >= 18 and cond.names == list(FEATURES) == feature_names()
    assert cond.values.dtype == np.float32 and cond.values.shape == (len(sample_bars), cond.n_features)
    assert len(set(cond.names)) == cond.n_features


def test_finite_after_warm_up_on_the_sp500(sample_bars):
    cond = compute_conditions(sample_bars)
    assert cond.first_valid == 251  # the 252-bar high is the longest window
    assert np.isfinite(cond.values[cond.first_valid :]).all()
    assert not np.isfinite(cond.values[cond.first_valid - 1]).all()
    # no feature is constant on real data (the model's normalization would have nothing to scale)
    assert (cond.values[cond.first_valid :].std(axis=0) > 0).all()


def test_cross_asset_features_with_the_vix_and_nasdaq(sample_bars, vix_bars, ixic_bars):
    cond = compute_conditions(sample_bars, {"VIX": vix_bars, "IXIC": ixic_bars})
    assert cond.names == feature_names(["VIX", "IXIC"])
    assert cond.names[len(FEATURES) :] == [
        "ixic_ret_21",
        "ixic_vol_21",
        "ixic_rel_21",
        "ixic_corr_63",
        "vix_level",
        "vix_chg_5",
        "vix_z_63",
        "vix_premium_21",
    ]
    assert np.isfinite(cond.values[cond.first_valid :]).all()
    # before the VIX starts (2014-01-03) every VIX feature is warm-up; the z-score needs 63 VIX prints, and
    # a same-day VIX print is used one bar later (its 16:15 close is not known at the 16:00 close)
    vix_start = int(np.searchsorted(sample_bars.timestamps, vix_bars.timestamps[0]))
    assert np.isnan(cond.column("vix_level")[: vix_start + 1]).all()
    assert cond.column("vix_level")[vix_start + 1] == np.float32(vix_bars.close[0])
    assert vix_start + 63 <= cond.first_valid <= vix_start + 71
    assert cond.lagged == ("IXIC", "VIX") and cond.limited_by == "VIX"
    level = cond.column("vix_level")[cond.first_valid :]
    assert level.min() > 8 and level.max() < 60
    assert np.median(cond.column("ixic_corr_63")[cond.first_valid :]) > 0.7  # SPX and NASDAQ move together
    # context order does not change the columns
    again = compute_conditions(sample_bars, {"IXIC": ixic_bars, "VIX": vix_bars})
    assert again.names == cond.names and np.array_equal(again.values, cond.values, equal_nan=True)


def test_context_value_at_t_is_the_last_print_of_the_bar_before(sample_bars, vix_bars):
    cond = compute_conditions(sample_bars, {"VIX": vix_bars})
    level = cond.column("vix_level")
    ok = np.isfinite(vix_bars.close)
    vts, vclose = vix_bars.timestamps[ok], vix_bars.close[ok]
    rng = np.random.default_rng(0)
    start = int(np.searchsorted(sample_bars.timestamps, vts[0])) + 1
    for t in rng.integers(start, len(sample_bars), 50):
        j = np.searchsorted(vts, sample_bars.timestamps[t - 1], side="right") - 1
        assert vts[j] < sample_bars.timestamps[t]
        assert level[t] == np.float32(vclose[j])


def test_context_stamped_before_the_bar_is_used_the_same_bar(sample_bars, vix_bars):
    # stamped an hour before the bar's own timestamp: the timestamps prove the print was known at the decision
    early = replace(vix_bars, timestamps=vix_bars.timestamps - np.timedelta64(1, "h"))
    cond = compute_conditions(sample_bars, {"VIX": early})
    assert cond.lagged == ()
    level = cond.column("vix_level")
    t = int(np.searchsorted(sample_bars.timestamps, vix_bars.timestamps[100]))
    j = np.searchsorted(early.timestamps, sample_bars.timestamps[t], side="right") - 1
    assert level[t] == np.float32(early.close[j]) and early.timestamps[j] < sample_bars.timestamps[t]
    assert compute_conditions(sample_bars, {"VIX": vix_bars}).first_valid == cond.first_valid + 1


@pytest.mark.parametrize("t", [40, 300, 3900, 4700, 5029])
def test_no_feature_at_t_depends_on_anything_after_t(sample_bars, vix_bars, ixic_bars, t):
    context = {"VIX": vix_bars, "IXIC": ixic_bars}
    base = compute_conditions(sample_bars, context)
    when = sample_bars.timestamps[t]
    changed_ctx = {
        "VIX": perturb_context_after(vix_bars, when, seed=t),
        "IXIC": perturb_after(
            ixic_bars, int(np.searchsorted(ixic_bars.timestamps, when, side="right")) - 1, seed=t + 1
        ),
    }
    changed = compute_conditions(perturb_after(sample_bars, t, seed=t + 2), changed_ctx)
    assert np.array_equal(base.values[: t + 1], changed.values[: t + 1], equal_nan=True)
    assert not np.array_equal(base.values[t + 1 :], changed.values[t + 1 :], equal_nan=True)
    # and with the future cut off entirely
    cut = compute_conditions(sample_bars.slice(0, t + 1), context)
    assert np.array_equal(base.values[: t + 1], cut.values, equal_nan=True)


def test_context_starting_late_is_warm_up_and_a_stale_context_is_an_error(sample_bars, ixic_bars):
    late = ixic_bars.slice(3000)
    cond = compute_conditions(sample_bars, {"IXIC": late})
    assert np.isnan(cond.column("ixic_ret_21")[:3000]).all()
    assert cond.first_valid == 3000 + 64  # 63 returns of the index need 64 prints (3000..3063), lagged a bar
    assert cond.limited_by == "IXIC" and compute_conditions(sample_bars).limited_by is None
    ended = ixic_bars.slice(0, len(ixic_bars) - 30)
    with pytest.raises(InputError) as info:
        compute_conditions(sample_bars, {"IXIC": ended})
    assert info.value.field == "conditions_from" and info.value.value == "IXIC" and "30 bars" in info.value.rule
    assert compute_conditions(sample_bars, {"IXIC": ended}, max_stale_bars=None).first_valid < len(sample_bars)
    holes = np.ones(len(ixic_bars), bool)
    holes[2000:2010] = False
    gappy = Bars(
        "IXIC", "1d", *(getattr(ixic_bars, k)[holes] for k in ("timestamps", "open", "high", "low", "close", "volume"))
    )
    with pytest.raises(InputError):
        compute_conditions(sample_bars, {"IXIC": gappy})


def test_zero_volume_and_flat_prices_stay_finite(sample_bars):
    n = len(sample_bars)
    close = sample_bars.close.copy()
    close[1000:1100] = close[999]  # a halted stretch: no movement at all
    flat = replace(
        sample_bars,
        close=close,
        open=np.where((np.arange(n) >= 1000) & (np.arange(n) < 1100), close, sample_bars.open),
        high=np.where((np.arange(n) >= 1000) & (np.arange(n) < 1100), close, sample_bars.high),
        low=np.where((np.arange(n) >= 1000) & (np.arange(n) < 1100), close, sample_bars.low),
        volume=np.zeros(n),
    )
    cond = compute_conditions(flat)
    assert cond.first_valid == 251
    assert np.isfinite(cond.values[cond.first_valid :]).all()
    assert (cond.column("volume_z_21")[251:] == 0).all()
    assert (cond.column("cmf_21")[251:] == 0).all() and (cond.column("mfi_14")[251:] == 50).all()
    assert cond.column("vol_5")[1050] == 0 and cond.column("bb_z_20")[1090] == 0
    assert cond.column("donchian_20")[1090] == 0.5 and cond.column("trend_21")[1090] == 0


def test_short_history_is_all_warm_up(sample_bars):
    cond = compute_conditions(sample_bars.slice(0, 100))
    assert cond.first_valid == 100 and cond.values.shape == (100, len(FEATURES))
    assert compute_conditions(sample_bars.slice(0, 0)).values.shape == (0, len(FEATURES))


# --- indicator values against plain loops ------------------------------------------------------------


def wilder_loop(x, n, start):
    out = np.full(len(x), np.nan)
    s = start + n - 1
    out[s] = np.mean(x[start : start + n])
    for t in range(s + 1, len(x)):
        out[t] = out[t - 1] + (x[t] - out[t - 1]) / n
    return out


def test_indicators_match_reference_loops(sample_bars):
    bars = sample_bars.slice(0, 600)
    cond = compute_conditions(bars)
    c, h, lo = bars.close, bars.high, bars.low
    d = np.diff(c, prepend=c[0])
    gain = wilder_loop(np.maximum(d, 0), 14, 1)
    loss = wilder_loop(np.maximum(-d, 0), 14, 1)
    rsi = 100 - 100 / (1 + gain / loss)
    np.testing.assert_allclose(cond.column("rsi_14")[14:], rsi[14:], rtol=1e-5)
    prev = np.concatenate(([c[0]], c[:-1]))
    tr = np.maximum.reduce([h - lo, abs(h - prev), abs(lo - prev)])
    np.testing.assert_allclose(cond.column("atr_pct_14")[14:], (wilder_loop(tr, 14, 1) / c)[14:], rtol=1e-5)
    t = 500
    slope = np.polyfit(np.arange(21), np.log(c[t - 20 : t + 1]), 1)[0]
    vol = np.std(np.diff(np.log(c[t - 21 : t + 1])))
    assert cond.column("trend_21")[t] == pytest.approx(slope / vol, rel=1e-5)
    assert cond.column("vol_21")[t] == pytest.approx(vol * np.sqrt(252), rel=1e-5)
    assert cond.column("ret_5")[t] == pytest.approx(np.log(c[t] / c[t - 5]), rel=1e-5)
    hh, ll = h[t - 54 : t + 1].max(), lo[t - 54 : t + 1].min()
    assert cond.column("donchian_55")[t] == pytest.approx((c[t] - ll) / (hh - ll), rel=1e-5)
    win = np.log(c[t - 19 : t + 1])
    assert cond.column("bb_z_20")[t] == pytest.approx((win[-1] - win.mean()) / win.std(), rel=1e-4)
    tp = (h + lo + c) / 3
    flow = tp * bars.volume
    sl = slice(t - 13, t + 1)
    up = np.diff(tp, prepend=tp[0])[sl] > 0
    down = np.diff(tp, prepend=tp[0])[sl] < 0
    mfi = 100 * flow[sl][up].sum() / (flow[sl][up].sum() + flow[sl][down].sum())
    assert cond.column("mfi_14")[t] == pytest.approx(mfi, rel=1e-5)
    adx = cond.column("adx_14")
    assert np.isnan(adx[26]) and np.isfinite(adx[27]) and np.nanmin(adx) >= 0 and np.nanmax(adx) <= 100
