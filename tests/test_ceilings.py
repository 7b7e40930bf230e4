"""bench's ceilings per precision and the memory bandwidth (workflows/bench/ceilings.py): busy
detection, the cache, the CPU's capabilities decide which precisions get a figure.

The probes and the machine's load are faked (monkeypatch) so that every branch runs on every
machine in no time; one small test runs the real probes."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys

import pytest

from effnet_cli.backends import openvino as openvino_backend
from effnet_cli.util import capabilities
from effnet_cli.workflows.bench import ceilings
from effnet_cli.workflows.bench.ceilings import Windows
from tests.conftest import GEMM_RATES

EVERYTHING = frozenset({"avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni"})
AVX2_ONLY = frozenset({"avx2", "fma"})


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Each test its own cache: nothing is read from or written to the user's."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("EFFNET_CACHE_DIR", str(folder))
    return folder


def _cpu(monkeypatch, flags=EVERYTHING, openvino=("FP32", "BF16", "INT8", "BIN")):
    monkeypatch.setattr(capabilities, "cpu_flags", lambda: frozenset(flags))
    monkeypatch.setattr(openvino_backend, "openvino_capabilities", lambda: tuple(openvino))


def _measure(refresh=False, notes=None):
    return ceilings.measure_ceilings(2, "cpu", refresh, (notes if notes is not None else []).append)


# ---------------------------------------------------------------------------- the cache


def test_an_idle_measurement_is_cached_and_read_back(cache, load, probes, monkeypatch):
    _cpu(monkeypatch)
    notes: list[str] = []
    first = _measure(notes=notes)
    assert probes == ["fp32", "bf16", "int8", "triad"]
    for precision in ceilings.PRECISIONS:
        ceiling = first.for_precision(precision)
        assert ceiling is not None and ceiling.precision == precision
        assert ceiling.source == "measured" and not ceiling.busy and ceiling.busy_reason is None
        assert ceiling.macs_per_s == max(GEMM_RATES[precision])  # the best window
        assert ceiling.method == f"fake {precision} GEMM on 2 threads" and ceiling.threads == 2
        assert ceiling.conditions is not None and ceiling.conditions.windows == len(
            GEMM_RATES[precision]
        )
    assert first.bandwidth.bytes_per_s == 20e9 and first.bandwidth.source == "measured"
    assert first.bandwidth.array_bytes == 128 * 2**20 and first.bandwidth.arrays_counted == 3
    assert len(list(cache.glob("*.json"))) == 4
    assert sum("measuring" in note for note in notes) == 4

    second = _measure()
    assert len(probes) == 4  # nothing measured again
    for before, after in zip(
        (*first.gemm, first.bandwidth), (*second.gemm, second.bandwidth), strict=True
    ):
        assert after.source == "cached" and after.cache is not None
        assert after == dataclasses.replace(before, source="cached")  # conditions included
    third = _measure(refresh=True)  # --ceiling
    assert [c.source for c in third.gemm] == ["measured"] * 3 and len(probes) == 8


def test_the_cache_is_per_thread_count_and_cpu(cache, load, probes, monkeypatch):
    _cpu(monkeypatch)
    _measure()
    ceilings.measure_ceilings(1, "cpu", False, print)
    assert len(probes) == 8 and len(list(cache.glob("*.json"))) == 8
    _cpu(monkeypatch, flags=EVERYTHING | {"fake_flag"})
    _measure()
    assert len(probes) == 12


def test_a_cache_entry_that_is_unreadable_or_busy_is_measured_again(
    cache, load, probes, monkeypatch
):
    _cpu(monkeypatch, flags=AVX2_ONLY)
    _measure()
    files = sorted(cache.glob("*.json"))
    assert len(files) == 2  # fp32 and the triad: the others have no figure
    files[0].write_text("{not json")
    entry = json.loads(files[1].read_text())
    files[1].write_text(json.dumps({**entry, "busy": True}))
    again = _measure()
    assert again.gemm[0].source == "measured" and again.bandwidth.source == "measured"
    assert len(probes) == 4


def test_to_json_gives_plain_json_values(load, probes, monkeypatch):
    _cpu(monkeypatch, flags=AVX2_ONLY)
    document = json.loads(json.dumps(_measure().to_json()))
    assert [g["precision"] for g in document["gemm"]] == ["fp32", "bf16", "int8"]
    fp32, bf16, _ = document["gemm"]
    assert fp32["macs_per_s"] == 100e9 and fp32["conditions"]["busy"] is False
    assert "busy_reason" not in fp32 and "reason" not in fp32  # None is left out
    assert bf16["macs_per_s"] is None and bf16["source"] == "unavailable" and bf16["reason"]
    assert "conditions" not in bf16 and "cache" not in bf16
    assert document["bandwidth"]["write_allocate_counted"] is False
    assert document["threads"] == 2 and document["device"] == "cpu"


# ---------------------------------------------------------------------------- busy


@pytest.mark.parametrize(
    ("busy", "expected"),
    [
        ({"load": 2.1}, "load average 2.1 on 2 cores"),
        ({"other_cpu_s": 1.4}, "other processes used 1.4 CPU-s of"),
    ],
)
def test_a_busy_machine_is_flagged_and_not_cached(cache, load, probes, monkeypatch, busy, expected):
    _cpu(monkeypatch)
    for name, value in busy.items():
        setattr(load, name, value)
    notes: list[str] = []
    result = _measure(notes=notes)
    for ceiling in (*result.gemm, result.bandwidth):
        assert ceiling.source == "measured" and ceiling.busy  # the figure is still returned
        assert ceiling.busy_reason is not None and expected in ceiling.busy_reason
        assert ceiling.conditions is not None and ceiling.conditions.busy
        assert ceiling.cache is None
    assert result.gemm[0].macs_per_s == 100e9
    assert not list(cache.glob("*.json"))
    assert sum("not cached" in note for note in notes) == 4
    _measure()
    assert len(probes) == 8  # nothing was cached: measured again


def test_a_wide_spread_between_windows_is_busy(cache, load, monkeypatch):
    _cpu(monkeypatch, flags=AVX2_ONLY)
    monkeypatch.setattr(
        ceilings, "openvino_gemm_windows", lambda *a, **k: Windows((100e9, 50e9, 99e9), "fake")
    )
    monkeypatch.setattr(
        ceilings, "triad_windows", lambda *a, **k: Windows((20e9, 19e9), "fake", array_bytes=1)
    )
    result = _measure()
    fp32 = result.gemm[0]
    assert fp32.busy and fp32.busy_reason == "the slowest of 3 windows ran at 50 % of the fastest"
    assert fp32.macs_per_s == 100e9 and not result.bandwidth.busy  # 95 %: idle
    assert [p.name for p in cache.glob("*.json")] == [result.bandwidth.cache.split("/")[-1]]


def test_a_busy_measurement_leaves_an_idle_cached_figure_alone(cache, load, probes, monkeypatch):
    _cpu(monkeypatch, flags=AVX2_ONLY)
    idle = _measure()
    load.other_cpu_s = 1.4
    busy = _measure(refresh=True)
    assert busy.gemm[0].busy and busy.gemm[0].source == "measured"
    load.other_cpu_s = 0.0
    again = _measure()
    assert (
        again.gemm[0].source == "cached" and again.gemm[0].measured_at == idle.gemm[0].measured_at
    )


def _judge(rates=(100.0, 99.0), seconds=1.0, threads=2, cores=2, load=0.1, own=0.0, other=0.0):
    return ceilings.judge(
        rates, seconds, threads, cores=cores, load=load, own=own, other_cpu_s=other
    )


def test_judge_reads_every_signal_against_the_cores_the_probe_leaves_free():
    assert not _judge().busy and _judge().reason is None
    both = _judge(load=2.1, other=1.4, seconds=1.0)
    assert both.busy and both.reason == (
        "load average 2.1 on 2 cores; other processes used 1.4 CPU-s of 2.0 during the probe"
    )
    # this process's own share of the load average is not someone else's
    assert not _judge(load=2.1, own=1.9).busy
    mine = _judge(load=3.5, own=0.5)
    assert mine.busy and mine.reason == "load average 3.5 on 2 cores (this process about 0.5 of it)"
    # a probe on one thread of two cores leaves one free: one other busy process is no harm
    assert not _judge(threads=1, load=1.9, other=0.9).busy
    assert _judge(threads=1, other=1.3).busy
    # rates, not totals: 1.4 CPU-s over 10 s is 0.14 CPUs
    assert not _judge(seconds=10.0, other=1.4).busy
    # no load average or /proc/stat: those signals say nothing
    assert not _judge(load=None, own=None).busy
    assert _judge(rates=(100.0, 84.0)).busy and not _judge(rates=(100.0, 86.0)).busy
    assert not _judge(rates=(100.0,)).busy and _judge(rates=(100.0,)).worst_over_best == 1.0


def test_observe_counts_only_other_processes_cpu_time(monkeypatch):
    """/proc/stat's busy time less this process's own over the probe."""
    machine = iter([100.0, 103.0])  # 3 CPU-s went by on the machine
    own = iter([10.0, 11.5])  # 1.5 of them this process's
    monkeypatch.setattr(ceilings, "machine_cpu_seconds", lambda: next(machine))
    monkeypatch.setattr(ceilings, "own_cpu_seconds", lambda: next(own))
    monkeypatch.setattr(ceilings, "load_average", lambda: None)
    monkeypatch.setattr(ceilings, "own_load", lambda: None)
    monkeypatch.setattr(ceilings, "machine_cores", lambda: 2)
    _, conditions = ceilings.observe(lambda: Windows((1.0, 1.0), "fake"), 2)
    assert conditions.other_cpu_s == pytest.approx(1.5) and conditions.busy
    assert "other processes used 1.5 CPU-s" in (conditions.reason or "")


@pytest.mark.parametrize("rates", [(), (1.0, 0.0), (1.0, math.inf), (math.nan,)])
def test_a_probe_without_positive_finite_windows_gives_no_figure(load, probes, monkeypatch, rates):
    _cpu(monkeypatch, flags=AVX2_ONLY)
    monkeypatch.setattr(ceilings, "openvino_gemm_windows", lambda *a, **k: Windows(rates, "x"))
    fp32 = _measure().gemm[0]
    assert fp32.macs_per_s is None and fp32.source == "unavailable"
    assert fp32.reason is not None and "not positive finite" in fp32.reason


# ---------------------------------------------------------------------------- capabilities


def test_a_cpu_without_bf16_or_vnni_gets_no_figure_and_says_why(load, probes, monkeypatch):
    _cpu(monkeypatch, flags=AVX2_ONLY)  # OpenVINO (faked) would claim both: the CPU decides
    result = _measure()
    assert probes == ["fp32", "triad"]  # the bf16 and int8 probes never ran
    bf16, int8 = result.for_precision("bf16"), result.for_precision("int8")
    assert bf16 is not None and int8 is not None
    assert (bf16.macs_per_s, bf16.source, int8.macs_per_s, int8.source) == (
        None, "unavailable", None, "unavailable")  # fmt: skip
    assert bf16.reason is not None and "no AVX512-BF16 or AMX-BF16" in bf16.reason
    assert int8.reason is not None and "no AVX512-VNNI, AVX-VNNI or AMX-INT8" in int8.reason
    assert result.gemm[0].macs_per_s == 100e9


@pytest.mark.parametrize(
    "flags", [{"avx512_bf16", "avx512_vnni"}, {"amx_bf16", "amx_int8"}, {"avx512_bf16", "avx_vnni"}]
)
def test_with_the_flags_on_the_bf16_and_int8_probes_run(load, probes, monkeypatch, flags):
    _cpu(monkeypatch, flags=AVX2_ONLY | flags)
    result = _measure()
    assert probes == ["fp32", "bf16", "int8", "triad"]
    assert [c.macs_per_s for c in result.gemm] == [100e9, 200e9, 400e9]


def test_openvino_must_agree_that_the_precision_is_native(load, probes, monkeypatch):
    _cpu(monkeypatch, openvino=("FP32", "INT8", "BIN"))  # the CPU has bf16, OpenVINO says not
    bf16 = _measure().for_precision("bf16")
    assert bf16 is not None and bf16.macs_per_s is None and "bf16" not in probes
    assert bf16.reason is not None and "OpenVINO does not run bf16 natively" in bf16.reason


def test_a_failing_probe_or_a_gpu_gives_no_figure(load, monkeypatch):
    _cpu(monkeypatch, flags=AVX2_ONLY)

    def broken(*args, **kwargs):
        raise RuntimeError("no OpenVINO here\nsecond line")

    monkeypatch.setattr(ceilings, "openvino_gemm_windows", broken)
    monkeypatch.setattr(ceilings, "triad_windows", broken)
    result = _measure()
    assert result.gemm[0].reason == "the fp32 GEMM probe failed: no OpenVINO here"
    assert result.bandwidth.reason == "the triad probe failed: no OpenVINO here"
    on_gpu = ceilings.measure_ceilings(2, "gpu", False, print)  # the probes would raise
    assert all(c.macs_per_s is None and "--device gpu" in (c.reason or "") for c in on_gpu.gemm)
    assert on_gpu.bandwidth.bytes_per_s is None


def test_the_gemm_must_run_in_the_precision_asked():
    """What the runtime graph says decides: a FakeQuantize run in float is not int8."""

    def layer(runtime, inputs, kernel="some kernel"):
        return ceilings.GemmLayer(name="MatMul_1", runtime=runtime, inputs=inputs, kernel=kernel)

    ceilings.check_gemm_runs_in("int8", layer("u8", ("u8", "i8"), "brgemm_avx512_I8"))
    ceilings.check_gemm_runs_in("bf16", layer("bf16", ("bf16", "bf16"), "brgemm_avx512_bf16"))
    ceilings.check_gemm_runs_in("fp32", layer("f32", ("f32", "f32"), "brgemm_avx512_f32"))
    for precision, runtime, inputs in [
        ("int8", "f32", ("f32", "f32")),
        ("int8", "u8", ("u8", "f32")),
        ("bf16", "f32", ("f32", "f32")),
        ("bf16", "bf16", ("f32", "bf16")),
        ("fp32", "bf16", ("bf16", "bf16")),
    ]:
        with pytest.raises(ceilings.ProbeError, match=f"not in {precision}"):
            ceilings.check_gemm_runs_in(precision, layer(runtime, inputs))


# ---------------------------------------------------------------------------- the triad


def test_the_triad_counts_three_arrays_of_eight_byte_floats(monkeypatch):
    assert ceilings.triad_bytes(1000) == 24_000  # b, c read and a written: 3 × 1000 × 8
    assert ceilings.triad_bytes(1000, itemsize=4) == 12_000
    # one sweep over 3 × 4 MiB counts 12 MiB
    swept: list[tuple[float, float]] = []

    def one_sweep(step, seconds, windows):
        swept.append(step())
        return (1.0,)

    monkeypatch.setattr(ceilings, "timed_windows", one_sweep)
    windows = ceilings.triad_windows(2, array_bytes=4 * 2**20)
    ((counted, took),) = swept
    assert counted == 3 * 4 * 2**20 == 12_582_912 and 0 < took < 5
    assert windows.array_bytes == 4 * 2**20
    assert "3 × 4 MiB float64" in windows.method and "write-allocate not" in windows.method


def test_the_triad_arrays_are_sized_from_the_l3(monkeypatch):
    for l3, each in [(32 * 2**20, 128 * 2**20), (4 * 2**20, 64 * 2**20),
                     (1 * 2**30, 512 * 2**20), (None, 256 * 2**20)]:  # fmt: skip
        monkeypatch.setattr(ceilings, "last_level_cache_bytes", lambda v=l3: v)
        assert ceilings.triad_array_bytes() == each


def test_timed_windows_divide_each_windows_work_by_its_time():
    steps = iter([(10.0, 0.5), (30.0, 0.5), (8.0, 2.0), (100.0, 1.0)] + [(1.0, 1.0)] * 10**6)
    rates = ceilings.timed_windows(lambda: next(steps), 1e-9, 3)  # one step a window
    assert rates == (20.0, 60.0, 4.0)
    slow = ceilings.timed_windows(lambda: (1.0, 0.25), 0.003, 2)  # several steps a window
    assert slow == (4.0, 4.0)


# ---------------------------------------------------------------------------- real probes


def test_the_real_probes_give_finite_positive_figures():
    """The real fp32 GEMM (OpenVINO, checked f32 in its runtime graph) and triad, briefly."""
    gemm = ceilings.openvino_gemm_windows("fp32", 2, seconds=0.2, windows=4, n=256)
    triad = ceilings.triad_windows(2, seconds=0.2, windows=4, array_bytes=16 * 2**20)
    for windows in (gemm, triad):
        assert len(windows.rates) == 4
        assert all(math.isfinite(r) and r > 0 for r in windows.rates)
    assert "(ran f32×f32, " in gemm.method
    assert 1e8 < max(gemm.rates) < 1e13 and 1e8 < max(triad.rates) < 1e12  # MAC/s, B/s


def test_openvino_runs_the_fake_quantized_gemm_in_int8():
    """Where OpenVINO runs int8, its runtime graph shows the MatMul reading u8 × i8."""
    import openvino as ov

    if "INT8" not in openvino_backend.openvino_capabilities():
        pytest.skip("OpenVINO lists no INT8 on this CPU")
    model = ceilings.gemm_model("int8", n=64)
    assert sum(op.get_type_name() == "FakeQuantize" for op in model.get_ops()) == 2
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    layer = ceilings.gemm_layer(compiled)
    assert layer.runtime in ("u8", "i8") and layer.inputs == ("u8", "i8"), layer


def test_the_real_load_sources_read_this_machine():
    total = ceilings.machine_cpu_seconds()
    assert total is None or total > 0
    own = ceilings.own_load()
    assert own is None or 0 <= own <= ceilings.machine_cores() + 1
    average = ceilings.load_average()
    assert average is None or average >= 0
    assert ceilings.own_cpu_seconds() > 0


def test_importing_the_ceilings_loads_no_heavy_module():
    code = (
        "import sys, effnet_cli.workflows.bench.ceilings; "
        "print(sorted(m for m in ('numpy', 'openvino', 'tensorflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
