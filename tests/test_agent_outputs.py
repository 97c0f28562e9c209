"""Which files the agent saves, and under which names."""

from burst.outputs import find_outputs


def make(root, *names):
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(name)


def test_outputs_keep_their_path_below_the_patterns_fixed_folder(tmp_path):
    make(tmp_path, "results/a.csv", "results/deep/b.csv", "log.dat", "other/c.csv", "x.csv")
    outputs, warnings = find_outputs(tmp_path, ["results/**", "*.dat", "other/*.csv"])
    assert sorted(outputs) == ["a.csv", "c.csv", "deep/b.csv", "log.dat"]
    assert outputs["deep/b.csv"] == tmp_path / "results/deep/b.csv"
    assert warnings == []


def test_a_plain_file_name_is_saved_under_its_name(tmp_path):
    make(tmp_path, "out/summary.json")
    outputs, _ = find_outputs(tmp_path, ["out/summary.json"])
    assert list(outputs) == ["summary.json"]


def test_a_pattern_matching_nothing_is_a_warning(tmp_path):
    outputs, warnings = find_outputs(tmp_path, ["results/**"])
    assert outputs == {}
    assert warnings == ["no output matches 'results/**' in the code folder"]
