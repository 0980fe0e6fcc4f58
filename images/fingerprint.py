"""What a submission is made of, in a form copies cannot hide from: its code with comments, names,
docstrings and formatting removed, and the content hashes of its model files.

Code: every statement of every Python file is normalised (names the submission binds itself —
variables, functions, classes, arguments, attributes it assigns, import aliases — become `_`;
docstrings and comments are gone; formatting is `ast.unparse`'s) and hashed. Renaming things,
re-commenting or re-formatting a copy changes none of it. Library names (`torch.compile`,
`pipeline.enable_vae_tiling`) stay: a copier cannot rename what it calls.

Models: the Hugging Face cache names each file's blob by its content hash (sha256 for the large
LFS files), so the same weights re-uploaded under another repository name have the same blobs.
"""

from __future__ import annotations

import ast
import hashlib
import os
from pathlib import Path

from edgemaxx.models import CodeFingerprint, ModelFile, ModelSpec

# Weights, not configs: small files (configs, tokenizers) are shared by every fork of a model.
MIN_MODEL_FILE_BYTES = 1024 * 1024
_PLACEHOLDER = "_"


class _Bound(ast.NodeVisitor):
    """Names the code binds itself (as opposed to names it gets from libraries)."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.attributes: set[str] = set()
        self.aliases: dict[str, str] = {}

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.names.add(node.name)
        self.generic_visit(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self.names.add(node.name)
        self.generic_visit(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.names.add(node.name)
        self.generic_visit(node)

    def visit_arg(self, node: ast.arg) -> None:
        self.names.add(node.arg)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Store | ast.Del):
            self.names.add(node.id)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.ctx, ast.Store):
            self.attributes.add(node.attr)
        self.generic_visit(node)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self.names.add(node.name)
        self.generic_visit(node)

    def visit_alias(self, node: ast.alias) -> None:
        if node.asname:
            # `import numpy as np`: `np` means numpy; an alias is a name the copier chose.
            self.aliases[node.asname] = node.name.split(".")[-1]


class _Normalise(ast.NodeTransformer):
    def __init__(self, bound: _Bound) -> None:
        self.bound = bound

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in self.bound.aliases:
            return ast.copy_location(ast.Name(id=self.bound.aliases[node.id], ctx=node.ctx), node)
        if node.id in self.bound.names:
            return ast.copy_location(ast.Name(id=_PLACEHOLDER, ctx=node.ctx), node)
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        self.generic_visit(node)
        if node.attr in self.bound.attributes:
            node.attr = _PLACEHOLDER
        return node

    def visit_arg(self, node: ast.arg) -> ast.AST:
        node.arg = _PLACEHOLDER
        node.annotation = None
        return node

    def visit_alias(self, node: ast.alias) -> ast.AST:
        node.asname = None
        if node.name in self.bound.names:  # `from pipeline import infer`: the submission's own name
            node.name = _PLACEHOLDER
        return node

    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.AST:
        self.generic_visit(node)
        if node.module and node.module.split(".")[0] in self.bound.names:
            node.module = _PLACEHOLDER  # one of the submission's own modules
        return node

    def _named(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> ast.AST:
        self.generic_visit(node)
        node.name = _PLACEHOLDER
        _drop_docstring(node)
        return node

    visit_FunctionDef = _named
    visit_AsyncFunctionDef = _named
    visit_ClassDef = _named


def _drop_docstring(node: ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        node.body = body[1:] or [ast.Pass()]


def _statements(tree: ast.Module) -> list[str]:
    """Each statement on its own: simple ones whole, compound ones by their header."""
    found: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.stmt):
            continue
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            decorators = "".join(f"@{ast.unparse(d)} " for d in node.decorator_list)
            if isinstance(node, ast.ClassDef):
                header = decorators + "class _(" + ", ".join(ast.unparse(b) for b in node.bases) + ")"
            else:
                header = decorators + f"def _({ast.unparse(node.args)})"
        elif isinstance(node, ast.If | ast.While):
            header = f"{type(node).__name__.lower()} {ast.unparse(node.test)}"
        elif isinstance(node, ast.For | ast.AsyncFor):
            header = f"for {ast.unparse(node.target)} in {ast.unparse(node.iter)}"
        elif isinstance(node, ast.With | ast.AsyncWith):
            header = "with " + ", ".join(ast.unparse(item) for item in node.items)
        elif isinstance(node, ast.Try):
            header = "try"
        else:
            header = ast.unparse(node)
        found.append(header)
    return found


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def code_fingerprint(root: Path) -> CodeFingerprint:
    """The normalised statements of every Python file under `root` (a file that does not parse
    counts as one statement: its bytes)."""
    hashes: list[str] = []
    trees: list[ast.Module] = []
    # Names bound anywhere in the submission (and its own module names) are its own, in every file:
    # `from pipeline import infer` in main.py names something the submission chose.
    bound = _Bound()
    for path in sorted(root.rglob("*.py")):
        if ".git" in path.parts or path.is_symlink() or not path.is_file():
            continue
        source = path.read_bytes()
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            hashes.append(_hash(source.decode(errors="replace")))
            continue
        bound.visit(tree)
        bound.names.add(path.stem)
        trees.append(tree)
    for tree in trees:
        _drop_docstring(tree)
        normalised = ast.fix_missing_locations(_Normalise(bound).visit(tree))
        hashes.extend(_hash(statement) for statement in _statements(normalised))
    hashes.sort()
    return CodeFingerprint(digest=_hash("\n".join(hashes)), statements=hashes)


def model_files(cache_dir: Path, specs: list[ModelSpec]) -> list[ModelFile]:
    """The weight files each model entry resolved to in the cache, with their content hashes."""
    files: list[ModelFile] = []
    for spec in specs:
        repo_dir = cache_dir / f"models--{spec.repository.replace('/', '--')}"
        snapshots = repo_dir / "snapshots"
        if not snapshots.is_dir():
            continue
        for snapshot in sorted(snapshots.iterdir()):
            if not snapshot.name.startswith(spec.revision):
                continue
            for dirpath, _dirs, names in os.walk(snapshot):
                for name in names:
                    path = Path(dirpath) / name
                    try:
                        size = path.stat().st_size
                    except OSError:
                        continue
                    if size < MIN_MODEL_FILE_BYTES:
                        continue
                    # Snapshot files link to blobs/<content hash>.
                    blob = Path(os.readlink(path)).name if path.is_symlink() else _file_sha256(path)
                    files.append(ModelFile(repository=spec.repository, path=str(path.relative_to(snapshot)),
                                           size=size, blob=blob))
    return files


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
