"""A config's mistakes are found when it is loaded, before any clip is decoded or model
loaded: each a ConfigError naming the config file and the key."""

from pathlib import Path

import pytest
import yaml

from lipbench.config import ConfigError, check_device, config_from_dict, load_config, shipped_configs
from lipbench.errors import LipbenchError
from lipbench.models.base import LipSyncModel

REPO = Path(__file__).resolve().parents[1]


class TakesAnything(LipSyncModel):
    """An adapter whose __init__ accepts **kwargs: its args cannot be checked by name."""

    name = "takes_anything"

    def __init__(self, scale: float = 1.0, **options):
        super().__init__()
        self.scale, self.options = scale, options

    def stream(self, request):
        yield request.frames.copy()


def base_config() -> dict:
    return {
        "name": "t",
        "data": {"synthetic": {"clips": 2, "frames": 9, "size": 128}},
        "models": ["ground_truth", {"name": "av_shift", "args": {"shift_frames": 2}}],
        "metrics": ["psnr"],
    }


def load_with(tmp_path, **changes) -> object:
    """Write base_config() with `changes` applied to bench.yaml and load it."""
    data = base_config()
    for key, value in changes.items():
        if key.startswith("synthetic_"):
            data["data"]["synthetic"][key[len("synthetic_") :]] = value
        else:
            data[key] = value
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_config(path)


def load_error(tmp_path, **changes) -> str:
    with pytest.raises(ConfigError) as error:
        load_with(tmp_path, **changes)
    message = str(error.value)
    assert "bench.yaml: " in message
    return message


def test_config_error_is_a_lipbench_error_and_still_a_value_error():
    assert issubclass(ConfigError, LipbenchError) and issubclass(ConfigError, ValueError)


@pytest.mark.parametrize(
    "metrics, key, problem",
    [
        (["psnr", "ssmi"], "metrics[1]", "unknown metric 'ssmi'. Did you mean ssim"),
        (["psnr@face"], "metrics[0]", "psnr has no protocol 'face'; protocols: full"),
        ("weight_free", "metrics", "expected a list of metric names, got 'weight_free'; write [weight_free]"),
        ([], "metrics", "expected a list of metric names"),
    ],
)
def test_unknown_metrics_and_a_metrics_string(tmp_path, metrics, key, problem):
    message = load_error(tmp_path, metrics=metrics)
    assert f"bench.yaml: {key}: " in message and problem in message


def test_metric_names_keys_and_suites_are_accepted(tmp_path):
    assert load_with(tmp_path, metrics=["sync_c", "ssim@full", "weight_free", "fid@per_video"]).metrics[0] == "sync_c"


@pytest.mark.parametrize(
    "models, key, problem",
    [
        (["procedual"], "models[0]: ", "unknown model 'procedual'. Did you mean procedural?"),
        (
            [{"name": "mine", "model": "nowhere_pkg.mod:Model"}],
            "models[0].model: ",
            "model 'nowhere_pkg.mod:Model': cannot import nowhere_pkg.mod:Model",
        ),
        ([{"name": "av_shfit"}], "models[0].name: ", "Did you mean av_shift?"),
        (
            [{"name": "av_shift", "arg": {"shift_frames": 1}}],
            "models[0]: ",
            "unknown key 'arg'; a model entry takes name, model, args. Did you mean args?",
        ),
        ([{"name": "av_shift", "args": [1]}], "models[0].args: ", "expected a mapping"),
        (
            [{"name": "av_shift", "args": {"shfit_frames": 1}}],
            "models[0].args: ",
            "'shfit_frames' is not an argument of av_shift (lipbench.models.oracles:AVShift); it takes shift_frames. "
            "Did you mean shift_frames?",
        ),
        (
            [{"name": "gt", "model": "ground_truth", "args": {"scale": 2}}],
            "models[0].args: ",
            "'scale' is not an argument of ground_truth (lipbench.models.oracles:GroundTruth); it takes no arguments.",
        ),
        (
            [{"name": "outs", "model": "precomputed"}],
            "models[0].args: ",
            "precomputed (lipbench.models.precomputed:Precomputed) needs folder",
        ),
        ("ground_truth", "models: ", "expected a list of model names or mappings"),
        (["still", "still"], "models: ", "names must be unique"),
    ],
)
def test_model_mistakes(tmp_path, models, key, problem):
    message = load_error(tmp_path, models=models)
    assert f"bench.yaml: {key}" in message and problem in message


def test_args_of_an_adapter_taking_kwargs_are_not_checked_by_name(tmp_path):
    model = f"{__name__}:TakesAnything"
    config = load_with(tmp_path, models=[{"name": "any", "model": model, "args": {"scale": 2.0, "anything": 1}}])
    assert config.models[0].args == {"scale": 2.0, "anything": 1}


@pytest.mark.parametrize(
    "key, value, problem",
    [
        ("video_format", "avi", "'avi' is not one of mkv, mp4"),
        ("device", "gpu", "'gpu' is not a device; use cpu, cuda or cuda:N"),
        ("device", "cuda:", "is not a device"),
        ("device", "cuda:x", "is not a device"),
        ("device", "cpu:0", "is not a device"),
        ("device", 0, "is not a device"),
        ("warmup_clips", -1, "expected an integer >= 0, got -1"),
        ("warmup_clips", 1.5, "expected an integer >= 0, got 1.5"),
        ("warmup_clips", True, "expected an integer >= 0, got True"),
        ("bootstrap_resamples", 0, "expected a positive integer, got 0"),
        ("set_resamples", "100", "expected a positive integer, got '100'"),
        ("unit_timeout_s", 0, "expected a number > 0, got 0"),
        ("unit_timeout_s", -5.0, "expected a number > 0"),
        ("unit_timeout_s", "1h", "expected a number > 0, got '1h'"),
    ],
)
def test_bad_settings(tmp_path, key, value, problem):
    message = load_error(tmp_path, **{key: value})
    assert f"bench.yaml: {key}: " in message and problem in message


@pytest.mark.parametrize(
    "key, value, problem",
    [
        ("frames", 0, "expected a positive integer, got 0"),
        ("clips", -1, "expected a positive integer, got -1"),
        ("size", 2.5, "expected a positive integer, got 2.5"),
        ("fps", 0, "expected a number > 0"),
        ("frame", 9, "unknown; the recipe takes clips, seed, frames, fps, size, audio_rate. Did you mean frames?"),
    ],
)
def test_bad_synthetic_recipe(tmp_path, key, value, problem):
    message = load_error(tmp_path, **{f"synthetic_{key}": value})
    assert f"bench.yaml: data.synthetic.{key}: " in message and problem in message


def test_data_needs_one_source(tmp_path):
    message = load_error(tmp_path, data={"manifest": "m.yaml", "synthetic": {}})
    assert "bench.yaml: data: needs exactly one of" in message


@pytest.mark.parametrize("device", ["cpu", "cuda", "cuda:1", "cuda:12"])
def test_good_devices(tmp_path, device):
    assert load_with(tmp_path, device=device).device == device
    assert check_device(device, "--device") == device


def test_check_device_names_the_flag():
    with pytest.raises(ConfigError, match=r"^--device: 'cuda1' is not a device; use cpu, cuda or cuda:N$"):
        check_device("cuda1", "--device")


def test_unit_timeout_default_null_and_number(tmp_path):
    assert load_with(tmp_path).unit_timeout_s == 3600.0
    assert load_with(tmp_path, unit_timeout_s=None).unit_timeout_s is None
    timeout = load_with(tmp_path, unit_timeout_s=30).unit_timeout_s
    assert timeout == 30.0 and isinstance(timeout, float)


def test_check_models_false_reads_a_saved_config_without_the_model_code():
    data = {**base_config(), "models": [{"name": "mine", "model": "nowhere_pkg.mod:Model", "args": {"x": 1}}]}
    with pytest.raises(ConfigError, match="cannot import nowhere_pkg.mod:Model"):
        config_from_dict(data, "run/config.yaml")
    config = config_from_dict(data, "run/config.yaml", check_models=False)
    assert config.models[0].model == "nowhere_pkg.mod:Model" and config.models[0].args == {"x": 1}


def test_a_config_round_trips_through_to_dict():
    config = config_from_dict(base_config(), "bench.yaml")
    data = config.to_dict()
    data.pop("source")
    data["models"] = [{"name": m["label"], "model": m["model"], "args": m["args"]} for m in data["models"]]
    assert config_from_dict(data, "run/config.yaml").to_dict() == {**config.to_dict(), "source": "run/config.yaml"}


@pytest.mark.parametrize("config", shipped_configs() + sorted(str(p) for p in (REPO / "benchmarks").glob("**/*.yaml")))
def test_shipped_configs_load(config):
    assert load_config(config).models
