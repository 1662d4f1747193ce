"""Every ```python block of README.md and docs/*.md runs, so the documentation cannot rot.

The blocks of one page run in order in one namespace, as a reader pastes them into one
session, with the working directory a fresh temporary folder (whatever they write lands
there). Line numbers in tracebacks are the page's own. Two comments on the line before a
fence change what happens to a block::

    <!-- write: my_kernels/scale.cu -->     the block (any language) is saved to that path first
    <!-- no-run: needs a GPU -->            the block is left out; the only reason allowed

Such blocks run too where CuPy sees a GPU. The shell blocks are checked more lightly: each
``python examples/<file>.py --flag`` they show names a real example and real flags, and every
relative link points at a file that exists.
"""
import dataclasses
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^(\s*)```\s*([\w+-]*)\s*$")
_DIRECTIVE = re.compile(r"^\s*<!--\s*(no-run|write):\s*(.*?)\s*-->\s*$")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


@dataclasses.dataclass
class Block:
    page: pathlib.Path
    line: int            # 1-based line of the block's first code line
    language: str
    code: str
    no_run: str = None   # the reason given in a no-run comment, if any
    write: str = None    # the path given in a write comment, if any


def read_blocks(page):
    """The fenced code blocks of a Markdown page, with their first line and any no-run / write comment."""
    blocks, lines = [], page.read_text().splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        indent, language = opening.group(1), opening.group(2).lower()
        previous = next((lines[i] for i in range(index - 1, -1, -1) if lines[i].strip()), "")
        directive = _DIRECTIVE.match(previous)
        kind, value = directive.groups() if directive else (None, None)
        end = index + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        assert end < len(lines), f"{page.name}:{index + 1}: a code block that is never closed"
        code = "\n".join(l[len(indent):] if l.startswith(indent) else l for l in lines[index + 1:end])
        blocks.append(Block(page, index + 2, language, code, value if kind == "no-run" else None,
                            value if kind == "write" else None))
        index = end + 1
    return blocks


def python_blocks(page):
    return [b for b in read_blocks(page) if b.language in ("python", "py") and b.write is None]


def blocks_to_run(page):
    """The python blocks and the blocks to save as files, in page order."""
    return [b for b in read_blocks(page) if b.write is not None or b.language in ("python", "py")]


def _gpu_usable():
    from gpunet.backend import cupy_device
    return cupy_device.usable()


def _label(page):
    return str(page.relative_to(ROOT))


RUNNABLE_PAGES = [p for p in PAGES if python_blocks(p)]


def test_the_guide_has_its_pages():
    names = {p.name for p in PAGES}
    for expected in ("README.md", "getting-started.md", "models-and-training.md", "backends.md",
                     "saving.md", "custom-layers.md", "custom-kernels.md", "layers-convolution.md"):
        assert expected in names, f"docs page {expected} is missing; pages: {sorted(names)}"
    assert len(RUNNABLE_PAGES) >= 10, [_label(p) for p in RUNNABLE_PAGES]


def _save(block, folder):
    """Write a ``<!-- write: path -->`` block to that path inside ``folder``."""
    relative = pathlib.PurePath(block.write)
    assert not relative.is_absolute() and ".." not in relative.parts, \
        f"{_label(block.page)}:{block.line}: a block may be written only inside the working folder"
    target = folder / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(block.code + "\n")


@pytest.mark.parametrize("page", RUNNABLE_PAGES, ids=_label)
def test_python_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__main__"}
    gpu, ran = None, 0
    for block in blocks_to_run(page):
        if block.write is not None:
            _save(block, tmp_path)
            continue
        if block.no_run is not None:
            gpu = _gpu_usable() if gpu is None else gpu
            if not gpu:
                continue
        # Pad with blank lines so that tracebacks quote the page's own line numbers.
        source = "\n" * (block.line - 1) + block.code
        exec(compile(source, str(block.page), "exec"), namespace)
        ran += 1
    assert ran, f"{_label(page)}: no block ran"


def test_only_blocks_that_need_a_gpu_are_left_out():
    left_out = [b for p in PAGES for b in python_blocks(p) if b.no_run is not None]
    for block in left_out:
        print(f"not run here: {_label(block.page)}:{block.line}: {block.no_run}")
        assert block.no_run.lower().startswith("needs a gpu"), (
            f"{_label(block.page)}:{block.line}: a block may be left out only because it needs a GPU "
            f"('<!-- no-run: needs a GPU ... -->'); this one says {block.no_run!r}")
    runnable = sum(1 for p in PAGES for b in python_blocks(p) if b.no_run is None)
    assert runnable > 5 * len(left_out), f"{runnable} blocks run, {len(left_out)} left out"


def _example_commands():
    """(page, line, script, flags) for each ``python examples/x.py ...`` in a shell block."""
    found = []
    for page in PAGES:
        for block in read_blocks(page):
            if block.language not in ("bash", "sh", "shell", "console"):
                continue
            for offset, text in enumerate(block.code.splitlines()):
                command = text.split("#")[0]
                for match in re.finditer(r"python\s+(examples/[\w./-]+\.py)([^&|;]*)", command):
                    flags = re.findall(r"(--[\w-]+)", match.group(2))
                    found.append((page, block.line + offset, match.group(1), flags))
    return found


def test_example_commands_name_real_scripts_and_flags():
    commands = _example_commands()
    assert len(commands) >= 3, commands
    for page, line, script, flags in commands:
        path = ROOT / script
        assert path.is_file(), f"{_label(page)}:{line}: {script} does not exist"
        source = path.read_text()
        for flag in flags:
            assert f'"{flag}"' in source, f"{_label(page)}:{line}: {script} has no option {flag}"


def test_relative_links_point_at_files_that_exist():
    checked = 0
    for page in PAGES:
        text = page.read_text()
        for match in _LINK.finditer(text):
            target = match.group(1).split("#")[0]
            if not target or re.match(r"^[a-z]+:", target):
                continue
            line = text.count("\n", 0, match.start()) + 1
            assert (page.parent / target).exists(), f"{_label(page)}:{line}: broken link to {target}"
            checked += 1
    assert checked >= 10, f"only {checked} relative links found"
