"""Build files that build on any day: no exact distribution revision, one Debian release everywhere."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD_FILES = [
    *ROOT.glob("stage*/Dockerfile"),
    *ROOT.glob("stage*/*/Dockerfile"),
    ROOT / "Makefile",
    *ROOT.glob(".ci/*"),
    *ROOT.glob("**/*.sh"),
]
# name=1.22.1-9+deb12u11, name=2.0-1ubuntu3: one revision of one package, dropped by the archive at the next fix.
EXACT_REVISION = re.compile(r"=\s*\d[\w.:~]*-[\w.~]*(\+deb\d+u\d+|ubuntu\d+)")


def build_files() -> list[Path]:
    return [p for p in BUILD_FILES if p.is_file() and ".venv" not in p.parts and "node_modules" not in p.parts]


def test_no_distribution_package_is_pinned_to_an_exact_revision():
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in build_files()
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if EXACT_REVISION.search(line)
    ]
    assert not found, "épinglez la série amont (nginx=1.22.*), pas une révision :\n" + "\n".join(found)


def test_the_pattern_catches_an_exact_revision_and_allows_a_series():
    assert EXACT_REVISION.search("apt-get install nginx=1.22.1-9+deb12u11")
    assert not EXACT_REVISION.search('apt-get install "nginx=1.22.*"')


def test_every_base_image_names_the_same_debian_release():
    bases = {
        line.split()[1]
        for path in [*ROOT.glob("stage*/Dockerfile"), *ROOT.glob("stage*/*/Dockerfile")]
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.startswith("FROM ")
    }
    assert bases and all(base.endswith("bookworm") or base.endswith("bookworm-slim") for base in bases), bases


def test_stage4_trusts_forwarded_headers_from_its_proxy_only():
    import yaml

    compose = yaml.safe_load((ROOT / "stage4_prod" / "docker-compose.yml").read_text(encoding="utf-8"))
    host_text = (ROOT / "stage4_prod" / "docker-compose.host.yml").read_text(encoding="utf-8")
    host = yaml.safe_load(host_text.replace("!reset", ""))  # Compose's own tag, unknown to PyYAML
    subnet = compose["networks"]["default"]["ipam"]["config"][0]["subnet"]
    assert compose["services"]["blue"]["environment"]["FORWARDED_ALLOW_IPS"] == subnet  # the proxy's network, never "*"
    for colour in ("blue", "green"):
        assert host["services"][colour]["environment"]["FORWARDED_ALLOW_IPS"] == "127.0.0.1"
    dockerfile = (ROOT / "stage4_prod" / "Dockerfile").read_text(encoding="utf-8")
    assert (
        '--forwarded-allow-ips \\"$FORWARDED_ALLOW_IPS\\"' in dockerfile
        and "FORWARDED_ALLOW_IPS=127.0.0.1" in dockerfile
    )


def test_stage4_images_are_named_by_variables():
    import yaml

    services = yaml.safe_load((ROOT / "stage4_prod" / "docker-compose.yml").read_text(encoding="utf-8"))["services"]
    assert services["blue"]["image"] == "${IMAGE:-pompe-anomalies-etape4}:${BLUE_TAG:-4.0.0}"
    assert services["green"]["image"] == "${IMAGE:-pompe-anomalies-etape4}:${GREEN_TAG:-4.0.0}"
    assert services["proxy"]["image"] == "${PROXY_IMAGE:-pompe-proxy-etape4}:${PROXY_TAG:-4.0.0}"
