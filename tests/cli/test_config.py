"""The main job's config: the shipped configs validate; wrong keys and values are named with the fix."""

from pathlib import Path

import pytest

from agentdistill.cli.config import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = {"teacher": {"model": "qwen2.5-coder-0.5b-instruct"}, "student": {"model": "smollm2-135m-instruct"}}


def _with(**tables):
    data = {k: dict(v) for k, v in MINIMAL.items()}
    for name, values in tables.items():
        data.setdefault(name, {}).update(values)
    return data


@pytest.mark.parametrize("name", ["quickstart.toml", "smoke.toml", "factual.toml"])
def test_shipped_configs_are_valid(name):
    cfg = load_config(ROOT / "configs" / name)
    assert cfg.teacher.model == "qwen2.5-coder-0.5b-instruct" and cfg.student.model == "smollm2-135m-instruct"
    assert cfg.task.family == ("factual" if name == "factual.toml" else "math")
    cfg.sft_settings()  # the [sft] table builds the optimizers' SFT dataclass


def test_quickstart_variants_cover_before_after_and_sag():
    cfg = load_config(ROOT / "configs" / "quickstart.toml")
    assert cfg.variants() == ["student-cot", "student-agent", "cot-distill", "agent-distill",
                              "agent-distill+sag"]  # SAG: self-consistent *action* generation


def test_sag_rows_follow_the_sag_programs():
    variants = {"variants": ["student-cot", "teacher-agent", "cot-distill"]}
    both = parse_config(_with(distill=variants))
    assert both.variants() == ["student-cot", "student-cot+sag", "teacher-agent", "teacher-agent+sag",
                               "cot-distill", "cot-distill+sag"]
    agent_only = parse_config(_with(distill=variants, sag={"programs": ["agent"]}))
    assert agent_only.variants() == ["student-cot", "teacher-agent", "teacher-agent+sag", "cot-distill"]
    off = parse_config(_with(distill=variants, sag={"enabled": False}))
    assert off.variants() == variants["variants"]


def test_defaults_and_benchmark_aliases_are_canonical():
    cfg = parse_config(_with(eval={"benchmarks": ["MATH-500", "gsm_hard"]}))
    assert cfg.eval.benchmarks == ["math500", "gsm-hard"]
    assert cfg.sag.enabled and cfg.sag.n == 8


# (config, the text its ConfigError says); tests/cli/test_errors.py prints each through the command line too
CONFIG_ERRORS = [
    (_with(sft={"epoch": 2}), "unknown key 'epoch' in [sft]; did you mean 'epochs'?"),
    (_with(eval={"benchmark": ["math500"]}), "unknown key 'benchmark' in [eval]; did you mean 'benchmarks'?"),
    (_with(sag={"temprature": 0.4}), "unknown key 'temprature' in [sag]; did you mean 'temperature'?"),
    ({**MINIMAL, "evaluation": {}}, "unknown table [evaluation]; did you mean 'eval'?"),
    (_with(eval={"limit": "ten"}), "[eval] limit must be an integer, got 'ten'"),
    (_with(sag={"enabled": "yes"}), "[sag] enabled must be true/false, got 'yes'"),
    (_with(eval={"benchmarks": "math500"}), "[eval] benchmarks must be a list of strings, got 'math500'"),
    (_with(sft={"lora_r": 1.5}), "[sft] lora_r must be an integer, got 1.5"),
    (_with(sft={"epochs": 0}), "[sft] SFT needs epochs > 0 or max_steps > 0"),
    (_with(task={"family": "maths"}), "[task] family must be 'math' or 'factual', got 'maths'"),
    (_with(task={"max_steps": 0}), "[task] max_steps must be >= 1, got 0"),
    (_with(eval={"benchmarks": ["math5000"]}), "[eval] unknown benchmark 'math5000'. Did you mean 'math500'?"),
    (_with(trainset={"benchmark": "hotpot_qa"}), "[trainset] unknown benchmark 'hotpot_qa'. Did you mean"),
    (_with(trainset={"file": "nope/missing.json"}), "[trainset] file 'nope/missing.json' does not exist"),
    (_with(distill={"variants": ["agent_distill"]}), "unknown variant 'agent_distill'; did you mean 'agent-distill'?"),
    (_with(task={"family": "factual"}), "[retrieval] index is required for factual tasks"),
    (_with(sag={"top_p": 1.5}), "[sag] top_p must be in (0, 1], got 1.5"),
    (_with(sag={"programs": ["agents"]}), "[sag] programs must list 'agent' and/or 'cot', got ['agents']"),
    ({"student": {"model": "smollm2-135m-instruct"}}, "[teacher] model is required"),
    (_with(student={"model": "s", "trained_backend": "vllm"}),
     '[student] trained_backend must be "transformers" or "llama.cpp", got \'vllm\''),
    (_with(teacher={"model": "t", "trained_backend": "llama.cpp"}), "[teacher] trained_backend: only the student"),
    # TRL / PEFT spellings of our [sft] keys
    (_with(sft={"num_train_epochs": 2}), "unknown key 'num_train_epochs' in [sft]; did you mean 'epochs'?"),
    (_with(sft={"r": 8}), "unknown key 'r' in [sft]; did you mean 'lora_r'?"),
    (_with(sft={"per_device_train_batch_size": 2}),
     "unknown key 'per_device_train_batch_size' in [sft]; did you mean 'per_device_batch_size'?"),
    # strict types: a TOML value of another type is never converted
    (_with(run={"seed": True}), "[run] seed must be an integer, got True"),
    (_with(trainset={"limit": "10"}), "[trainset] limit must be an integer, got '10'"),
    (_with(sag={"variants": "agent-distill"}), "[sag] variants must be a list of strings, got 'agent-distill'"),
    (_with(eval={"benchmarks": ["math500", 3]}), "[eval] benchmarks must be a list of strings, got ['math500', 3]"),
    (_with(sft={"target_modules": ["q_proj", 3]}),
     "[sft] target_modules must be a string or a list of strings, got ['q_proj', 3]"),
    (_with(eval={"limit": -1}), "[eval] limit must be >= 0, got -1"),
    (_with(sag={"top_p": 0}), "[sag] top_p must be in (0, 1], got 0"),
    (_with(sag={"zzz": 1}), "unknown key 'zzz' in [sag]; valid keys: enabled, programs, variants, n, temperature"),
    ({**MINIMAL, "path": {}}, "unknown table [path]; valid tables: run, task, teacher, student, trainset"),
]


@pytest.mark.parametrize("data,message", CONFIG_ERRORS)
def test_config_errors_name_the_problem_and_the_fix(data, message):
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    assert message in str(err.value)


def test_every_shipped_config_loads():
    shipped = sorted((ROOT / "configs").glob("*.toml"))
    assert len(shipped) >= 4
    for path in shipped:
        cfg = load_config(path)
        assert cfg.path == str(path) and cfg.variants()
        cfg.sft_settings()


def test_a_table_that_is_not_a_table():
    with pytest.raises(ConfigError, match=r"^\[run\] must be a table \(a \[run\] section\), got 3$"):
        parse_config({**MINIMAL, "run": 3})


def test_every_problem_of_a_file_is_named_at_once_each_line_with_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[teacher]\nmodel = "t"\n[student]\nmodel = "s"\n[sag]\nn = 0\ntemprature = 0.4\n'
                   '[sft]\nepoch = 2\n')
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    assert str(err.value).splitlines() == [
        f"{bad}: [sag] n must be >= 1, got 0",
        f"{bad}: unknown key 'temprature' in [sag]; did you mean 'temperature'?",
        f"{bad}: unknown key 'epoch' in [sft]; did you mean 'epochs'?"]


def test_python_construction_and_number_types():
    from agentdistill.cli.config import Config, TaskConfig

    assert Config(task=TaskConfig(family="factual", max_steps=3)).task.max_steps == 3
    assert parse_config(_with(sag={"temperature": 1})).sag.temperature == 1.0  # an integer is a number
    with pytest.raises(ConfigError, match=r"\[task\] max_steps must be an integer, got 3.0"):
        parse_config(_with(task={"max_steps": 3.0}))


def test_to_dict_is_every_table_and_not_the_path():
    cfg = load_config(ROOT / "configs" / "quickstart.toml")
    d = cfg.to_dict()
    assert list(d) == ["run", "task", "teacher", "student", "trainset", "retrieval", "distill", "sft", "eval", "sag"]
    assert d["sft"] == {"lora_r": 16, "lora_alpha": 32, "epochs": 2, "learning_rate": 5e-4, "warmup_ratio": 0.0,
                        "per_device_batch_size": 2, "max_length": 1024}  # as written: the job key hashes it
    assert d["sag"]["n"] == 3 and d["task"]["family"] == "math"


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[sft\nepochs = 2\n")
    with pytest.raises(ConfigError, match="bad.toml: not valid TOML"):
        load_config(bad)
    typo = tmp_path / "typo.toml"
    typo.write_text('[teacher]\nmodel = "t"\n[student]\nmodel = "s"\n[sft]\nepoch = 2\n')
    with pytest.raises(ConfigError, match=r"typo\.toml: unknown key 'epoch' in \[sft\]; did you mean 'epochs'\?"):
        load_config(typo)


def test_relative_input_paths_are_read_from_the_config_files_folder(tmp_path, monkeypatch):
    folder = tmp_path / "experiment"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "questions.json").write_text('[{"id": "q1", "question": "1 + 1?", "answer": "2"}]')
    (folder / "c.toml").write_text('[teacher]\nmodel = "t"\n[student]\nmodel = "s"\n'
                                   '[trainset]\nfile = "data/questions.json"\n'
                                   '[eval]\nbenchmarks = ["data/questions.json"]\n')
    monkeypatch.chdir(tmp_path)  # not the config's folder
    cfg = load_config(folder / "c.toml")
    assert cfg.trainset.file == str(folder / "data" / "questions.json")
    assert cfg.eval.benchmarks == [str(folder / "data" / "questions.json")]
    assert cfg.run.output_dir == "runs/agentdistill"  # outputs stay where you run (the shipped configs rely on it)


def test_a_path_relative_to_the_working_folder_still_works():
    # configs/smoke.toml names its trainset from the repository root, where the README runs it
    cfg = load_config(ROOT / "configs" / "smoke.toml")
    assert Path(cfg.trainset.file).is_file()


def test_the_prefix_variant_next_to_agent_distill_needs_the_prefix_off_there():
    data = {"teacher": {"model": "t"}, "student": {"model": "s"},
            "distill": {"variants": ["agent-distill", "agent-distill+ftp"]}}
    with pytest.raises(ConfigError, match="first_thought_prefix = false"):
        parse_config(data)
    data["distill"]["first_thought_prefix"] = False
    assert parse_config(data).distill.variants == ["agent-distill", "agent-distill+ftp"]
    with pytest.raises(ConfigError, match=r"\[sag\] variants: 'cot-distill' is not in"):
        parse_config({**data, "sag": {"variants": ["cot-distill"]}})


def test_the_committed_quickstart_store_covers_the_quickstart_under_the_current_settings(tmp_path):
    # a fresh clone's quickstart asks the teacher nothing: every trainset task has its CoT answer and trajectory
    # under the keys today's code makes (a change to prompts, templates or teacher settings fails here: regenerate
    # with `agentdistill distill configs/quickstart.toml --stage teacher --regenerate-teacher` and commit the store)
    from agentdistill.cli import distill
    from agentdistill.optimizers.first_thought import prefix_solver  # noqa: F401  (the key's pieces import it)
    from agentdistill.optimizers.store import TrajectoryStore, example_id

    cfg = load_config(ROOT / "configs" / "quickstart.toml")
    store = TrajectoryStore(cfg.distill.seed_store)
    train = distill.load_trainset(cfg)
    teacher_lm = distill.make_lm(cfg.teacher, cfg.task.max_tokens)  # lazy: no weights are loaded
    for variant in ("agent-distill", "cot-distill"):
        kind = "agent" if variant == "agent-distill" else "cot"
        teacher = distill.make_program(kind, cfg, max_tokens=cfg.teacher.max_tokens or None)
        teacher.set_lm(teacher_lm)
        tp = distill.teleprompter_for(variant, cfg, tmp_path, track=False)
        if kind == "agent":
            from agentdistill.optimizers.agent_distill import _without_final_ask

            key, record = tp.trajectory_settings(_without_final_ask(teacher), teacher_lm), "trajectory"
        else:
            key, record = tp.answer_settings(teacher, teacher_lm), "cot"
        missing = [ex.id for ex in train if not store.has(record, example_id(ex), key)]
        assert not missing, f"{variant}: the committed store lacks {len(missing)} of {len(train)} tasks"
