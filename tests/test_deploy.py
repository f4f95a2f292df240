"""Ready for a Space: the README's front matter, requirements.txt and ms_deploy.json agree with
each other and with the code; no token is committed; `python app.py` starts the way a Space
starts it (no arguments, host and port from the environment, the token from a secret)."""

from __future__ import annotations

import importlib.metadata as metadata
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
README_ZH = ROOT / "README_zh.md"
REQUIREMENTS = ROOT / "requirements.txt"
MS_DEPLOY = ROOT / "ms_deploy.json"

# A real ModelScope token: "ms-" then a lower-case UUID.
TOKEN_SHAPE = re.compile(r"ms-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TOKEN_VARS = ("MODELSCOPE_ACCESS_TOKEN", "MODELSCOPE_API_TOKEN", "MODELSCOPE_SDK_TOKEN")


def front_matter(path: Path = README) -> dict:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("---\n"), "README.md must open with the Spaces YAML front matter"
    end = text.index("\n---\n", 4)
    data = yaml.safe_load(text[4:end])
    assert isinstance(data, dict)
    return data


def requirements() -> list[Requirement]:
    reqs = []
    for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            reqs.append(Requirement(line))
    return reqs


def gradio_pin() -> str:
    (gradio,) = [r for r in requirements() if r.name.lower() == "gradio"]
    specs = list(gradio.specifier)
    assert len(specs) == 1 and specs[0].operator == "==", "requirements.txt must pin gradio exactly"
    return specs[0].version


def ms_deploy() -> dict:
    return json.loads(MS_DEPLOY.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- Hugging Face


def test_front_matter_describes_a_gradio_space():
    fm = front_matter()
    for key in ("title", "emoji", "sdk", "sdk_version", "app_file", "python_version", "license"):
        assert fm.get(key), f"front matter lacks {key}"
    assert fm["sdk"] == "gradio"
    assert (ROOT / fm["app_file"]).is_file(), f"app_file {fm['app_file']} does not exist"
    assert fm["app_file"] == "app.py"
    assert isinstance(fm["sdk_version"], str) and isinstance(fm["python_version"], str), (
        "quote versions in YAML (3.10 would read as the number 3.1)"
    )
    colors = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}
    assert fm.get("colorFrom", "gray") in colors and fm.get("colorTo", "gray") in colors


def test_front_matter_sdk_version_is_the_pinned_gradio():
    fm = front_matter()
    assert fm["sdk_version"] == gradio_pin()
    assert metadata.version("gradio") == gradio_pin(), "the tests run a different Gradio than a Space would"


def test_front_matter_python_version_fits_the_project():
    version = front_matter()["python_version"]
    assert re.fullmatch(r"3\.\d+(\.\d+)?", version), version
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    requires = re.search(r'^requires-python\s*=\s*"([^"]+)"', pyproject, re.M).group(1)
    assert SpecifierSet(requires).contains(version), f"python_version {version} vs requires-python {requires}"


def test_requirements_install_beside_the_spaces_gradio():
    """A Space installs gradio==sdk_version itself, then requirements.txt: every line must be
    satisfiable together with Gradio's own requirements. The environment the tests run in
    (which has that exact Gradio) is a witness: each installed version meets both."""
    gradio_reqs = {}
    for raw in metadata.requires("gradio") or []:
        req = Requirement(raw)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            gradio_reqs[canonical(req.name)] = req
    for req in requirements():
        name = canonical(req.name)
        installed = metadata.version(req.name)
        assert req.specifier.contains(installed, prereleases=True), f"{req} not met by installed {installed}"
        if name in gradio_reqs:
            theirs = gradio_reqs[name].specifier
            assert theirs.contains(installed, prereleases=True), f"{req} vs gradio's {theirs}"


def test_requirements_need_no_build_tools_or_gpu():
    names = {canonical(r.name) for r in requirements()}
    assert not names & {"torch", "tensorflow", "modelscope", "transformers"}, "the app only calls an API"
    assert "gradio" in names and "openai" in names


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# --------------------------------------------------------------------------- ModelScope studio


def test_ms_deploy_is_a_gradio_studio_on_free_cpu():
    cfg = ms_deploy()
    assert cfg["sdk_type"] == "gradio"
    assert cfg["sdk_version"] == gradio_pin() == front_matter()["sdk_version"]
    assert cfg["resource_configuration"] == "platform/2v-cpu-16g-mem"
    py = front_matter()["python_version"].replace(".", "")
    assert f"-py{py}-" in cfg["base_image"], "base image Python differs from the Space's"


def test_ms_deploy_environment_carries_no_secret():
    env = ms_deploy().get("environment_variables", [])
    assert isinstance(env, list)
    names = [item["name"] for item in env]
    assert len(names) == len(set(names))
    for item in env:
        assert set(item) == {"name", "value"} and isinstance(item["value"], str)
        assert item["name"] not in TOKEN_VARS, "the token belongs in the studio's settings, not in git"
    values = {item["name"]: item["value"] for item in env}
    for cap in ("STUDIO_SERVER_TOKEN_SESSION_LIMIT", "STUDIO_SERVER_TOKEN_DAILY_LIMIT"):
        if cap in values:
            assert int(values[cap]) > 0
    if "GRADIO_SERVER_PORT" in values:
        assert values["GRADIO_SERVER_NAME"] == "0.0.0.0"
        assert 1 <= int(values["GRADIO_SERVER_PORT"]) < 65536


def test_env_names_in_deploy_files_exist_in_the_code():
    """A variable the deploy file or README sets must be one the code reads."""
    sources = [ROOT / "app.py", *(ROOT / "ui").glob("*.py"), *(ROOT / "modelscope_api").rglob("*.py")]
    code = "\n".join(p.read_text(encoding="utf-8") for p in sources)
    for item in ms_deploy().get("environment_variables", []):
        if item["name"].startswith("STUDIO_"):
            assert f'"{item["name"]}"' in code, item["name"]
    readme = README.read_text(encoding="utf-8") + README_ZH.read_text(encoding="utf-8")
    code += "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests").rglob("*.py"))  # developer settings
    for name in sorted(set(re.findall(r"\bSTUDIO_[A-Z_]*[A-Z]\b", readme))):
        assert f'"{name}"' in code, f"README mentions {name}, which no code reads"


# --------------------------------------------------------------------------- secrets


def tracked_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True,
                             timeout=20).stdout.decode("utf-8", "replace")
        files = [ROOT / p for p in out.split("\0") if p]
    except (OSError, subprocess.SubprocessError):
        files = [p for p in ROOT.rglob("*") if ".git" not in p.parts]
    # plus the deploy files themselves, even before they are committed
    return sorted({*files, README, README_ZH, MS_DEPLOY, REQUIREMENTS})


def test_no_token_is_committed():
    found = []
    for path in tracked_files():
        if not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data[:4096]:
            continue  # images and other binaries
        for match in TOKEN_SHAPE.finditer(data.decode("utf-8", "replace")):
            found.append(f"{path.relative_to(ROOT)}: {match.group()[:7]}…")
    assert not found, "token-shaped strings in tracked files:\n" + "\n".join(found)


def test_the_token_pattern_catches_a_real_shape():
    fake = "ms-" + "0123abcd-4567-89ab-cdef-0123456789ab"  # split so this file stays clean
    assert TOKEN_SHAPE.search(f'api_key = "{fake}"')
    assert not TOKEN_SHAPE.search("ms-test-space ms-REDACTED ms-xxxxxxxx-…")



# --------------------------------------------------------------------------- start like a Space


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8", "replace")


SPACE_SECRET = "ms-test-space"  # what a Space owner puts in the MODELSCOPE_ACCESS_TOKEN secret


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    """`python app.py` with no arguments, configured only by the environment, as a Space runs
    it; the API it talks to is an in-test simulator."""
    from modelscope_api.simulator import SimConfig, Simulator

    tmp = tmp_path_factory.mktemp("space")
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MODELSCOPE_", "STUDIO_", "GRADIO_"))}
    env.update({
        "GRADIO_SERVER_NAME": "127.0.0.1",  # a Space sets 0.0.0.0; loopback keeps the test private
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "MODELSCOPE_ACCESS_TOKEN": SPACE_SECRET,
        "STUDIO_OUTPUTS_DIR": str(tmp / "outputs"),
        "PYTHONUNBUFFERED": "1",
    })
    with Simulator(SimConfig(task_seconds=0.2, ttft=0.01, tokens_per_second=3000)) as sim:
        env["MODELSCOPE_BASE_URL"] = sim.base_url
        log = (tmp / "app.log").open("w+b")
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}/"
        try:
            deadline = time.monotonic() + 120
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    pytest.fail(f"app.py exited with {proc.returncode}:\n{log.read().decode(errors='replace')[-3000:]}")
                try:
                    if get(url, timeout=2)[0] == 200:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail("app.py did not serve within 120 s")
                time.sleep(0.2)
            yield types_namespace(url=url, sim=sim, proc=proc)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            log.close()


def types_namespace(**kw):
    import types

    return types.SimpleNamespace(**kw)


def test_space_serves_the_page_and_the_api_info(space):
    status, page = get(space.url)
    assert status == 200 and "<html" in page.lower()
    status, info = get(space.url + "gradio_api/info")
    assert status == 200
    endpoints = json.loads(info)["named_endpoints"]
    assert {"/chat", "/vision", "/generate_image"} <= set(endpoints)
    for text in (page, info, get(space.url + "config")[1]):
        assert SPACE_SECRET not in text, "the Space's secret token reached a public page"


def test_space_uses_the_secret_for_a_student_without_a_token(space):
    from gradio_client import Client

    from modelscope_api.config import fingerprint

    student = Client(space.url, verbose=False, download_files=False)
    response, _, code = student.predict("hello", "Qwen/Qwen2.5-72B-Instruct", "", 0.7, 0.8, 0, False,
                                        api_name="/chat")
    assert response
    (call,) = [e for e in space.sim.log if e.path.endswith("/chat/completions")]
    assert call.token_fingerprint == fingerprint(SPACE_SECRET)
    assert SPACE_SECRET not in json.dumps(response) + code  # "Show code" reads the token from the env


# --------------------------------------------------------------------------- the README


def test_readme_opens_with_the_run_and_test_commands():
    text = README.read_text(encoding="utf-8")
    body = text[text.index("\n---\n", 4) + 5:]
    top = "\n".join(body.splitlines()[:40])
    assert "python app.py" in top and "python -m pytest" in top
    assert "README_zh.md" in top
    assert "README.md" in README_ZH.read_text(encoding="utf-8")


def test_readme_links_point_at_files_that_exist():
    """Relative links and images resolve; screenshots are made by the browser tests, so a
    missing one is reported only when its folder exists at all."""
    shots = ROOT / "assets" / "screenshots"
    for readme in (README, README_ZH):
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+://", target):
                continue
            path = ROOT / target
            if path.parent == shots and not shots.is_dir():
                continue
            assert path.exists(), f"{readme.name} links to {target}, which does not exist"


def test_readme_names_the_real_endpoints_and_flags():
    text = README.read_text(encoding="utf-8") + README_ZH.read_text(encoding="utf-8")
    app_src = (ROOT / "app.py").read_text(encoding="utf-8")
    for flag in set(re.findall(r"python app\.py[^`\n]*", text)):
        for opt in re.findall(r"--[a-z-]+", flag):
            assert f'"{opt}"' in app_src, f"README uses app.py {opt}, which app.py does not define"
    for endpoint in ("/chat", "/vision", "/generate_image"):
        assert f'api_name="{endpoint}"' in text
    assert "X-ModelScope-Token" in text
