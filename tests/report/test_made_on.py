"""The report says which processor and packages made a run's artifacts, one row per distinct set."""

from solar_ray.report.pipeline_report import made_on


def lineage(cpu, capability, torch="2.13.0"):
    return {"machine": {"arch": "x86_64", "cpu": cpu, "torch_cpu_capability": capability},
            "packages": {"torch": torch, "transformers": "5.25.0", "trl": "1.16.0", "deepspeed": "0.19.8"}}


def test_artifacts_made_alike_share_a_row_and_another_processor_gets_its_own():
    lines = made_on({"base": lineage("AMD EPYC", "AVX2"), "cpt": lineage("AMD EPYC", "AVX2"),
                     "sft_v1": lineage("Intel Xeon", "AVX512"), "old": {"packages": {"torch": "2.13.0"}}})
    rows = [line for line in lines if line.startswith("| ") and "processor" not in line]
    assert rows == ["| AMD EPYC | AVX2 | 2.13.0 | 5.25.0 | 1.16.0 | 0.19.8 | base, cpt |",
                    "| Intel Xeon | AVX512 | 2.13.0 | 5.25.0 | 1.16.0 | 0.19.8 | sft_v1 |"]


def test_another_torch_is_another_row_and_no_record_no_section():
    rows = [line for line in made_on({"a": lineage("EPYC", "AVX2"), "b": lineage("EPYC", "AVX2", torch="2.14.1")})
            if line.startswith("| ") and "processor" not in line]
    assert len(rows) == 2 and rows[1].endswith("| b |")
    assert made_on({"old": {"packages": {}}}) == []


def test_one_machine_for_every_artifact_is_one_row_that_says_so():
    rows = [line for line in made_on({"a": lineage("EPYC", "AVX2"), "b": lineage("EPYC", "AVX2")})
            if line.startswith("| ") and "processor" not in line]
    assert rows == ["| EPYC | AVX2 | 2.13.0 | 5.25.0 | 1.16.0 | 0.19.8 | all 2 |"]


def test_an_artifact_made_without_torch_shares_its_machines_row():
    merged = lineage("EPYC", "AVX2")
    del merged["machine"]["torch_cpu_capability"]  # the numpy-only merge does not load torch
    rows = [line for line in made_on({"a": lineage("EPYC", "AVX2"), "merge": merged})
            if line.startswith("| ") and "processor" not in line]
    assert rows == ["| EPYC | AVX2 | 2.13.0 | 5.25.0 | 1.16.0 | 0.19.8 | all 2 |"]
    alone = [line for line in made_on({"merge": merged}) if line.startswith("| EPYC")]
    assert alone == ["| EPYC | - | 2.13.0 | 5.25.0 | 1.16.0 | 0.19.8 | all 1 |"]
