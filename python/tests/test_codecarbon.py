"""decompute.codecarbon_compat against CodeCarbon 3.3.2 itself (installed beside it by
tools/python-test.sh): CodeCarbon's own examples run unchanged on both, write the same
columns and give a figure of the same scope; the scopes, the file, the extra names."""

import csv
import dataclasses
import json
import os
import subprocess
import sys
import warnings

import pytest

from decompute import codecarbon_compat as compat

BUSY = "x = 0\nfor i in range(4_000_000):\n    x += i\n"

# CodeCarbon's examples: its README's quick start, the context manager and the decorator
# of its documentation, with a busy loop as "your code".
SNIPPETS = {
    "start-stop": """from codecarbon import EmissionsTracker

tracker = EmissionsTracker()
tracker.start()

# Your code here
{busy}
emissions = tracker.stop()
print(f"Emissions: {{emissions}} kg CO₂")
""",
    "with": """from codecarbon import EmissionsTracker

with EmissionsTracker() as tracker:
    # Compute intensive code goes here
{busy_indented}
print(tracker.final_emissions)
""",
    "decorator": """from codecarbon import track_emissions


@track_emissions()
def your_function_to_track():
    # your code
{busy_indented}

your_function_to_track()
""",
}


def have_codecarbon() -> bool:
    try:
        import codecarbon  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("CodeCarbon is not installed beside decompute (tools/python-test.sh installs it)")
        return False
    return True


def snippet(name: str, ours: bool) -> str:
    indented = "\n".join("    " + line for line in BUSY.strip().splitlines())
    text = SNIPPETS[name].format(busy=BUSY, busy_indented=indented)
    if ours:
        # The one line a user changes.
        text = text.replace("from codecarbon import", "from decompute.codecarbon_compat import")
    return text


def run_snippet(tmp_path, name: str, ours: bool):
    d = tmp_path / ("decompute" if ours else "codecarbon") / name
    d.mkdir(parents=True)
    (d / "s.py").write_text(snippet(name, ours))
    env = dict(os.environ, DECOMPUTE_LEDGER=str(tmp_path / "l.sqlite"))
    out = subprocess.run(
        [sys.executable, "s.py"], cwd=d, env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    with open(d / "emissions.csv", newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], [dict(zip(rows[0], r)) for r in rows[1:]]


def mean_power_w(row) -> float:
    return float(row["energy_consumed"]) * 3.6e6 / float(row["duration"])


@pytest.mark.parametrize("name", sorted(SNIPPETS))
def test_codecarbon_examples_run_unchanged_and_mean_the_same(tmp_path, name):
    if not have_codecarbon():
        pytest.skip("CodeCarbon is not installed")
    theirs_header, theirs = run_snippet(tmp_path, name, ours=False)
    ours_header, ours = run_snippet(tmp_path, name, ours=True)
    assert len(theirs) == 1 and len(ours) == 1
    # The same columns in the same order: one file can hold both tools' rows.
    assert ours_header == theirs_header
    t, o = theirs[0], ours[0]
    # The same scope: CodeCarbon's default is the whole machine, and so is the drop-in's
    # (decompute's host figure). The workload's share on this busy loop is many times
    # smaller, so a scope mix-up shows as a ratio far outside these bounds.
    assert t["tracking_mode"] == o["tracking_mode"] == "machine"
    ratio = mean_power_w(o) / mean_power_w(t)
    assert 0.25 <= ratio <= 4.0, (mean_power_w(o), mean_power_w(t))
    assert float(o["emissions"]) > 0


def test_machine_and_process_scopes_are_the_host_and_the_workload(tmp_path, cli):
    ledger = tmp_path / "l.sqlite"
    os.environ["DECOMPUTE_LEDGER"] = str(ledger)
    try:
        m = compat.EmissionsTracker(project_name="cc", measure_power_secs=0.2, country_iso_code="FRA")
        m.start()
        exec(BUSY, {})
        kg_machine = m.stop()
        p = compat.EmissionsTracker(
            project_name="cc", measure_power_secs=0.2, country_iso_code="FRA", tracking_mode="process"
        )
        with p:
            exec(BUSY, {})
    finally:
        del os.environ["DECOMPUTE_LEDGER"]
    rm, rp = m.tracker.report, p.tracker.report
    assert kg_machine == m.final_emissions
    assert abs(kg_machine - rm["carbon_g"]["host"] / 1000) <= 1e-12 * max(kg_machine, 1e-9)
    assert abs(p.final_emissions - rp["carbon_g"]["value"] / 1000) <= 1e-12 * max(p.final_emissions, 1e-9)
    assert rm["energy_j"]["host"] >= rm["energy_j"]["workload"]
    d = m.final_emissions_data
    assert d.tracking_mode == "machine" and p.final_emissions_data.tracking_mode == "process"
    assert abs(d.energy_consumed * 3.6e6 - rm["facility_energy_j"]["host"]) < 1e-6
    assert d.country_iso_code == "FRA" and d.project_name == "cc"
    assert d.run_id == m.tracker.id
    # Both rows appended to one emissions.csv, one header.
    with open("emissions.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert len(rows) == 3 and rows[0][0] == "timestamp"
    assert [r[rows[0].index("tracking_mode")] for r in rows[1:]] == ["machine", "process"]
    # The ledger has both runs at the workload scope; importing the file adds nothing twice
    # (the rows carry the ledger's run ids).
    out = cli("ledger", "import", "emissions.csv", "--ledger", str(ledger))
    assert out.returncode == 0, out.stderr
    assert "2 already present" in out.stdout + out.stderr
    listed = json.loads(cli("ledger", "list", "--json", "--ledger", str(ledger)).stdout)
    assert len(listed) == 2


@pytest.mark.skipif(not have_codecarbon(), reason="CodeCarbon is not installed")
def test_emissions_data_has_codecarbons_fields():
    from codecarbon.output_methods.emissions_data import EmissionsData

    assert [f.name for f in dataclasses.fields(compat.EmissionsData)] == [
        f.name for f in dataclasses.fields(EmissionsData)
    ]


def test_codecarbons_names_and_refusals(tmp_path):
    with pytest.raises(TypeError, match="unexpected keyword argument 'no_such_option'"):
        compat.EmissionsTracker(no_such_option=1)
    with pytest.warns(UserWarning, match="api_key"):
        compat.EmissionsTracker(api_key="x", save_to_file=False)
    with pytest.raises(ValueError, match="tracking_mode"):
        compat.EmissionsTracker(tracking_mode="gpu")
    with pytest.raises(ValueError, match="country_iso_code"):
        compat.OfflineEmissionsTracker()
    with pytest.raises(OSError, match="doesn't exist"):
        compat.EmissionsTracker(output_dir=str(tmp_path / "nowhere"))
    # A file that is not CodeCarbon's is left alone; the run still ends and is returned.
    other = tmp_path / "emissions.csv"
    other.write_text("a,b\n1,2\n")
    t = compat.OfflineEmissionsTracker(country_iso_code="FRA", output_dir=str(tmp_path))
    t._track = compat.Track(record=False, zone="FRA", interval=0.1, on_exceed="warn")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        t.start()
        kg = t.stop()
    assert kg is not None and kg >= 0
    assert any("other columns" in str(x.message) for x in w)
    assert other.read_text() == "a,b\n1,2\n"

    calls = []

    @compat.track_emissions(offline=True, country_iso_code="FRA", save_to_file=False)
    def f(a, b=2):
        calls.append((a, b))
        return a + b

    @compat.track_emissions
    def g():
        return "bare"

    os.environ["DECOMPUTE_LEDGER"] = str(tmp_path / "l.sqlite")
    try:
        assert f(1, b=3) == 4 and calls == [(1, 3)]
        assert g() == "bare"
    finally:
        del os.environ["DECOMPUTE_LEDGER"]
