"""Which files the agent saves, and under which names."""

from burst.node.outputs import find_outputs


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


def test_each_patterns_fixed_folder_is_made_empty_of_matches_before_the_command(tmp_path):
    from burst.node.outputs import fixed_folder, prepare_results

    assert [fixed_folder(p) for p in ("results/**", "out/*.csv", "out/summary.json", "*.csv", "a/b/c*/d.txt")] == \
        ["results", "out", "out", "", "a/b"]
    code, elsewhere = tmp_path / "code", tmp_path / "elsewhere"
    make(code, "data/input.txt", "data/stale.out", "results/old.csv", "keep.txt")
    make(elsewhere, "linked.out")
    (code / "linked").symlink_to(elsewhere)
    assert prepare_results(code, ["results/**", "out/*.csv", "data/*.out", "linked/*.out"]) == []
    assert (code / "results").is_dir() and list((code / "results").iterdir()) == [], "results/ exists, empty"
    assert (code / "out").is_dir(), "out/ did not exist: it is made"
    assert not (code / "data" / "stale.out").exists() and (code / "data" / "input.txt").exists(), \
        "only files matching a pattern are removed, never the command's inputs"
    assert (elsewhere / "linked.out").exists(), "nothing outside the row's copy is removed"


def test_a_fixed_folder_that_is_a_file_is_a_warning(tmp_path):
    from burst.node.outputs import prepare_results

    make(tmp_path, "results")
    assert prepare_results(tmp_path, ["results/**"]) == [
        "the folder results/ of 'results/**' could not be made: a file of the code folder has its name"]
