"""The deployment profiles under deploy/ are valid for the Dagster they target.

- every ``dagster.yaml`` passes Dagster's own instance schema, and the config of every pluggable
  class it names (run coordinator, run launcher, storage) passes that class's ``config_type()``;
- the run-config snippets pass ``validate_run_config`` for the jobs they are meant for;
- ``kubernetes/values.yaml`` passes ``kubernetes/values.subset.schema.json`` (written for this
  project from the chart's documented values: the chart's own schema ships in no Python package);
- the Dockerfile uses the Makefile's install step and the code location the Helm values name.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from dagster import Definitions, validate_run_config
from dagster._config import process_config
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.instance.config import dagster_instance_config
from dagster._core.storage.config import pg_config
from dagster._serdes.config_class import ConfigurableClassData, class_from_code_pointer
from dagster_k8s import k8s_job_executor

from pov_pipeline.definitions import build_definitions
from pov_pipeline.jobs import participant_job

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROFILES = ("local", "postgres", "kubernetes")
CLASS_ENTRIES = (
    "run_coordinator",
    "run_launcher",
    "run_storage",
    "event_log_storage",
    "schedule_storage",
    "compute_logs",
)
PG_ENV = {
    "DAGSTER_PG_HOST": "db.example.internal",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_PG_USER": "dagster",
    "DAGSTER_PG_PASSWORD": "secret",
    "DAGSTER_PG_DB": "dagster",
}


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture
def pg_env(monkeypatch) -> None:
    for key, value in PG_ENV.items():
        monkeypatch.setenv(key, value)


def validate_instance_yaml(config: dict, tmp_path: Path) -> dict:
    """Validate like ``DagsterInstance.from_config`` does, without connecting to anything.

    Returns the validated config; raises ``DagsterInvalidConfigError`` on the first problem.
    """
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    validated, _custom_class = dagster_instance_config(str(home))
    for entry in CLASS_ENTRIES:
        if entry not in config:
            continue
        spec = config[entry]
        # As the instance resolves it (``dagster.core`` is the public alias of ``dagster._core``),
        # minus the instantiation, which would connect to a database or a cluster.
        data = ConfigurableClassData(spec["module"], spec["class"], yaml.safe_dump(spec.get("config") or {}))
        cls = class_from_code_pointer(data.module_name, data.class_name)
        result = process_config(cls.config_type(), data.config_dict)
        if not result.success:
            raise DagsterInvalidConfigError(f"{entry}: {spec['class']}", result.errors, spec.get("config"))
    if "postgres" in config.get("storage", {}):
        result = process_config(pg_config(), config["storage"]["postgres"])
        if not result.success:
            raise DagsterInvalidConfigError("storage.postgres", result.errors, config["storage"])
    return dict(validated)


def test_every_yaml_under_deploy_parses_to_a_mapping():
    files = sorted(DEPLOY.rglob("*.yaml"))
    assert {f.relative_to(DEPLOY).as_posix() for f in files} >= {
        "local/dagster.yaml",
        "postgres/dagster.yaml",
        "postgres/run_config_multiprocess.yaml",
        "kubernetes/dagster.yaml",
        "kubernetes/run_config_k8s_executor.yaml",
        "kubernetes/values.yaml",
    }
    for path in files:
        assert isinstance(_load(path), dict) and _load(path), path


def test_local_profile_is_the_projects_default_instance():
    assert _load(DEPLOY / "local" / "dagster.yaml") == _load(ROOT / ".dagster_home" / "dagster.yaml")


@pytest.mark.parametrize("profile", PROFILES)
def test_instance_profile_passes_dagsters_instance_schema(profile, pg_env, tmp_path):
    config = _load(DEPLOY / profile / "dagster.yaml")
    validated = validate_instance_yaml(config, tmp_path)
    assert validated["telemetry"] == {"enabled": False}
    if profile != "local":
        assert config["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"
        assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
        limits = config["run_coordinator"]["config"]["tag_concurrency_limits"]
        assert {"key": "pov/stage", "value": "encoders", "limit": 1} in limits
    if profile == "kubernetes":
        assert (config["run_launcher"]["module"], config["run_launcher"]["class"]) == (
            "dagster_k8s",
            "K8sRunLauncher",
        )


@pytest.mark.parametrize(
    ("entry", "mutate"),
    [
        ("typo at the top", lambda c: c.update(run_cordinator=c.pop("run_coordinator"))),
        ("typo in the queue", lambda c: c["run_coordinator"]["config"].update(max_concurent_runs=3)),
        (
            "limit not an int",
            lambda c: c["run_coordinator"]["config"]["tag_concurrency_limits"][0].update(limit="x"),
        ),
        ("launcher typo", lambda c: c["run_launcher"]["config"].update(instance_configmap="x")),
        ("storage typo", lambda c: c["storage"]["postgres"]["postgres_db"].update(hostnme="x")),
    ],
)
def test_the_validation_rejects_broken_profiles(entry, mutate, pg_env, tmp_path):
    config = _load(DEPLOY / "kubernetes" / "dagster.yaml")
    mutate(config)
    with pytest.raises(DagsterInvalidConfigError):
        validate_instance_yaml(config, tmp_path)


def test_postgres_profile_needs_its_environment(monkeypatch, tmp_path):
    for key in PG_ENV:
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(DagsterInvalidConfigError, match="DAGSTER_PG_HOST"):
        validate_instance_yaml(_load(DEPLOY / "postgres" / "dagster.yaml"), tmp_path)


@pytest.fixture(scope="module")
def pov_defs(tmp_path_factory) -> Definitions:
    return build_definitions(str(tmp_path_factory.mktemp("lake")))


@pytest.mark.parametrize("job", ["participant_job", "study_job"])
def test_multiprocess_run_config_is_valid_for_the_jobs(job, pov_defs):
    run_config = _load(DEPLOY / "postgres" / "run_config_multiprocess.yaml")
    validate_run_config(pov_defs.resolve_job_def(job), run_config)
    multiprocess = run_config["execution"]["config"]["multiprocess"]
    assert multiprocess["max_concurrent"] >= 1
    assert multiprocess["start_method"]["forkserver"]["preload_modules"] == ["pov_pipeline.definitions"]


def test_multiprocess_run_config_rejects_unknown_keys(pov_defs):
    run_config = _load(DEPLOY / "postgres" / "run_config_multiprocess.yaml")
    run_config["execution"]["config"]["multiprocess"]["max_concurent"] = 2
    with pytest.raises(DagsterInvalidConfigError):
        validate_run_config(pov_defs.resolve_job_def("participant_job"), run_config)


def test_k8s_executor_run_config_is_valid_for_a_job_on_the_k8s_executor(pov_defs):
    on_k8s = Definitions(
        assets=pov_defs.assets,
        asset_checks=pov_defs.asset_checks,
        jobs=[participant_job],
        resources=pov_defs.resources,
        executor=k8s_job_executor,
    )
    job = on_k8s.resolve_job_def("participant_job")
    assert job.executor_def.name == "k8s"
    run_config = _load(DEPLOY / "kubernetes" / "run_config_k8s_executor.yaml")
    validate_run_config(job, run_config)
    run_config["execution"]["config"]["max_concurrent_pods"] = 3
    with pytest.raises(DagsterInvalidConfigError):
        validate_run_config(job, run_config)


def _values_validator() -> jsonschema.Draft7Validator:
    schema = yaml.safe_load((DEPLOY / "kubernetes" / "values.subset.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_helm_values_pass_the_chart_subset_schema():
    values = _load(DEPLOY / "kubernetes" / "values.yaml")
    errors = [f"{list(e.path)}: {e.message}" for e in _values_validator().iter_errors(values)]
    assert errors == []
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert (deployment["image"]["repository"], deployment["image"]["tag"]) == ("pov-pipeline", "latest")
    assert deployment["port"] == 3030
    module = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["dagster"]["module_name"]
    assert deployment["dagsterApiGrpcArgs"] == ["--module-name", module]
    # The chart's queue and the kubernetes instance profile enforce the same limits.
    queue = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    instance = _load(DEPLOY / "kubernetes" / "dagster.yaml")["run_coordinator"]["config"]
    assert queue["maxConcurrentRuns"] == instance["max_concurrent_runs"]
    assert queue["tagConcurrencyLimits"] == instance["tag_concurrency_limits"]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda v: v["dagster-user-deployments"]["deployments"][0]["image"].pop("pullPolicy"),
        lambda v: v["dagster-user-deployments"]["deployments"][0].update(port="3030"),
        lambda v: v["dagster-user-deployments"]["deployments"][0].pop("dagsterApiGrpcArgs"),
        lambda v: v["runLauncher"].update(type="K8sLauncher"),
        lambda v: v["runLauncher"]["config"]["k8sRunLauncher"].update(jobNamespce="x"),
        lambda v: v["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"].update(maxRuns=3),
    ],
)
def test_the_subset_schema_rejects_broken_values(mutate):
    values = _load(DEPLOY / "kubernetes" / "values.yaml")
    mutate(values)
    assert list(_values_validator().iter_errors(values))


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    rows = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(row.split(None, 1)[0].upper(), row.split(None, 1)[1] if " " in row else "") for row in rows]


def test_dockerfile_installs_like_make_demo_and_serves_the_code_location():
    instructions = _dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    runs = [arg for op, arg in instructions if op == "RUN"]
    torch_pin = re.search(r"torch==([\w.+]+)", (ROOT / "Makefile").read_text()).group(1)
    torch_step = next(i for i, arg in enumerate(runs) if "pip install" in arg and "torch==" in arg)
    assert f"torch=={torch_pin}" in runs[torch_step]
    package_step = next(i for i, arg in enumerate(runs) if re.search(r"pip install -e '?\.", arg))
    assert torch_step < package_step  # torch first, or pip resolves a CUDA build for the package
    cmd = next(arg for op, arg in instructions if op == "CMD")
    values = _load(DEPLOY / "kubernetes" / "values.yaml")
    port = values["dagster-user-deployments"]["deployments"][0]["port"]
    assert '"pov_pipeline.definitions"' in cmd and f'"{port}"' in cmd
    assert any(op == "EXPOSE" and arg == str(port) for op, arg in instructions)
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert {"**/.venv", "data_lake", ".dagster_home", "build"} <= set(ignored)


def test_install_services_script_is_valid_bash():
    bash = shutil.which("bash")
    assert bash is not None
    done = subprocess.run(
        [bash, "-n", str(DEPLOY / "ci" / "install_services.sh")], capture_output=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
