"""``rlhub hub``: publish env packages, find them, install them pinned (docs/publishing.md walks through it)."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

console = Console()
HUB_OPTION = click.option(
    "--hub", "hub", envvar="RLHUB_HUB", help="The hub index: an http(s) or file URL, or a path [env: RLHUB_HUB]."
)
LOCK_OPTION = click.option(
    "--lock", "lock", type=click.Path(dir_okay=False), envvar="RLHUB_LOCK", default="rlhub.lock", show_default=True,
    help="The lock file [env: RLHUB_LOCK].",
)  # fmt: skip


@click.group()
def hub():
    """Publish, find and install environment packages, pinned in rlhub.lock."""


@hub.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
def freeze(directory: str):
    """Score gold, near-miss and garbage rollouts with the package's code; write DIRECTORY/rollouts.jsonl."""
    from rlhub.hub.freeze import freeze as freeze_rollouts
    from rlhub.hub.freeze import read_rollouts

    path = freeze_rollouts(directory)
    console.print(f"wrote {path} ({len(read_rollouts(path))} rollouts)", highlight=False, soft_wrap=True)


@hub.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@HUB_OPTION
@click.option("--repository-url", required=True, help="Where twine uploads (a pypiserver, PyPI's upload URL).")
@click.option("--index-url", help="The simple index pip installs from [default: REPOSITORY_URL/simple/].")
@click.option("-u", "--username", help="Upload user [default: $TWINE_USERNAME].")
@click.option("-p", "--password", help="Upload password [default: $TWINE_PASSWORD].")
@click.option("--build-isolation/--no-build-isolation", default=True, show_default=True, help="python -m build's.")
def publish(directory, hub, repository_url, index_url, username, password, build_isolation):
    """Build, validate (every probe), drift-check, upload the package in DIRECTORY, and add it to the hub index."""
    from rlhub.errors import RLHubError
    from rlhub.hub.freeze import PackageSource
    from rlhub.hub.publish import publish as publish_package

    if not hub:
        raise RLHubError("pass --hub FILE (or set $RLHUB_HUB): the hub index file publish adds the version to")
    entry = publish_package(
        directory, hub, repository_url, index_url=index_url, username=username, password=password,
        isolation=build_isolation,
    )  # fmt: skip
    source = PackageSource.read(directory)
    console.print(
        f"published {source.name} {source.version} ({', '.join(entry['envs'])}): wheel sha256 "
        f"{entry['wheel']['sha256'][:16]}, reward hash {entry['reward_hash']}",
        highlight=False,
        soft_wrap=True,
    )


@hub.command()
@click.argument("words", nargs=-1)
@HUB_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def search(words: tuple[str, ...], hub: str | None, as_json: bool):
    """List the hub's packages whose name, env ids or summary hold every WORD."""
    from rlhub.hub.index import read_index, sorted_versions
    from rlhub.hub.index import search as search_index

    found = search_index(read_index(hub), list(words))
    if as_json:
        click.echo(json.dumps([{**p, "versions": sorted_versions(p)} for p in found], indent=2))
        return
    table = Table()
    for column in ("package", "latest", "envs", "license", "summary"):
        table.add_column(column, overflow="fold")
    for package in found:
        envs = ", ".join(package["envs"])
        table.add_row(package["name"], sorted_versions(package)[-1], envs, package["license"], package["summary"])
    console.print(table)


@hub.command()
@click.argument("name")
@HUB_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the version's index entry as JSON.")
def info(name: str, hub: str | None, as_json: bool):
    """What the hub knows of NAME[@VERSION]: versions, hashes, validate verdict, probes' highest scores."""
    from rlhub.hub.index import find, read_index, sorted_versions

    package, version = find(read_index(hub), name)
    entry = package["versions"][version]
    if as_json:
        shown = {k: v for k, v in entry.items() if k != "rollouts"}
        click.echo(json.dumps({"name": package["name"], "version": version, **shown}, indent=2))
        return
    lines = [
        f"{package['name']} {version}: {package['summary']}",
        f"versions: {', '.join(sorted_versions(package))}; license: {package['license']}",
        f"envs: {', '.join(entry['envs'])}",
        f"wheel: {entry['wheel']['filename']} sha256 {entry['wheel']['sha256']}",
        f"hashes: code {entry['code_hash']}, data {entry['data_hash']}, reward {entry['reward_hash']}",
        f"validate: {'passed' if entry['validate']['passed'] else 'FAILED'}",
    ]
    probes = entry["validate"]["probes"].items()
    lines += [f"  {probe}: correct <= {s['correct']:g}, total <= {s['total']:g}" for probe, s in probes]
    for env_id, figures in entry.get("card", {}).items():
        lines.append(f"card {env_id}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
    console.print("\n".join(lines), highlight=False, soft_wrap=True)


@hub.command()
@click.argument("name")
@HUB_OPTION
@LOCK_OPTION
@click.option("--trust", type=click.Choice(["sandbox", "in-process"]), default="sandbox", show_default=True,
              help="Record the package as run in its sandbox, or trusted in-process.")  # fmt: skip
def install(name: str, hub: str | None, lock: str, trust: str):
    """Install NAME[@VERSION] from the hub (pinned by hash), validate it, and record it in the lock."""
    from rlhub.hub.index import hub_url
    from rlhub.hub.install import install as install_package

    locked = install_package(name, hub_url(hub), Path(lock), trust=trust)
    console.print(
        f"installed {locked['name']} {locked['version']} ({', '.join(locked['envs'])}), validated, locked in {lock}; "
        f"use it as rlhub.make({locked['envs'][0] + '@' + locked['version']!r})",
        highlight=False,
        soft_wrap=True,
    )


@hub.command()
@LOCK_OPTION
def sync(lock: str):
    """Install exactly what the lock pins, checking every installed file against it."""
    from rlhub.hub.install import sync as sync_lock

    packages = sync_lock(Path(lock))
    console.print(f"synced {len(packages)} package(s) from {lock}", highlight=False)
