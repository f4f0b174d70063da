"""The `KeypointSchema`: names, OKS sigmas, flip pairs, skeleton and groups of one keypoint set.

A schema is the single source of truth every other layer reads: the data loader checks keypoint counts and
category names against it, augmentation flips with its pairs, heads size their output from it and metrics
take their OKS sigmas from it. It is immutable and validated on construction, so a schema that exists is
a schema that is consistent.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from poseadapt.errors import SchemaError

YAML_FIELDS = ("name", "keypoints", "sigmas", "flip_pairs", "skeleton", "groups", "aliases")

# A side word: `left`/`right` or a lone `l`/`r`, as a whole token of the name. Tokens are separated by `_`, `-`,
# `.`, spaces or a camelCase boundary: left_knee, knee_left, L_wrist, wrist_R, LeftWrist, l.ankle, RKnee.
_SIDE = {"left": "right", "right": "left", "l": "r", "r": "l"}
_TOKEN = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+|[^A-Za-z\d]+")


def _tokens(name: str) -> list[str]:
    """`name` split into tokens that join back to it exactly (separators are tokens of their own)."""
    parts = _TOKEN.findall(name)
    return parts if "".join(parts) == name else [name]


def _swap_case_like(word: str, template: str) -> str:
    if template.isupper():
        return word.upper()
    if template[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def _side_token(tokens: list[str]) -> int | None:
    """Index of the one side token (left/right/l/r; a camelCase `LKnee`'s leading `LK` counts as `L` + `K...`)."""
    found = [i for i, t in enumerate(tokens) if t.lower() in _SIDE]
    return found[0] if len(found) == 1 else None


def _mirror_name(name: str) -> str | None:
    """Return the name of the other side (left_knee -> right_knee, L_wrist -> R_wrist, LeftHip -> RightHip), or
    None when the name has no side."""
    tokens = _tokens(name)
    if len(tokens) > 1 and re.fullmatch(r"[LR][A-Z]", tokens[0]) is None:
        i = _side_token(tokens)
    else:
        i = None
    if i is None:
        # `LKnee` / `RShoulder`: an upper-case L or R glued to a capitalised word
        m = re.fullmatch(r"([LR])([A-Z][a-z].*)", name)
        if m:
            return ("R" if m.group(1) == "L" else "L") + m.group(2)
        # `leftknee` / `kneeleft` written as one word
        low = name.lower()
        for a, b in (("left", "right"), ("right", "left")):
            if low.startswith(a) and len(low) > len(a):
                return _swap_case_like(b, name[: len(a)]) + name[len(a) :]
            if low.endswith(a) and len(low) > len(a):
                return name[: -len(a)] + _swap_case_like(b, name[-len(a) :])
        return None
    t = tokens[i]
    if len(tokens) == 1:
        return None
    tokens[i] = _swap_case_like(_SIDE[t.lower()], t)
    return "".join(tokens)


def derive_flip_pairs(keypoints: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """Flip pairs from left/right names: every `left_X` whose `right_X` exists (and the other spellings:
    `X_left`, `l_X`, `X_l`, `L_X`, `X_R`, `LeftX`, `LX`; case-insensitive, the other side's case kept alike)."""
    present = set(keypoints)
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name in keypoints:
        if name in seen:
            continue
        other = _mirror_name(name)
        if other is not None and other in present and other != name and other not in seen:
            left, right = (name, other) if _is_left(name) else (other, name)
            pairs.append((left, right))
            seen.update((name, other))
    return tuple(pairs)


def _is_left(name: str) -> bool:
    tokens = _tokens(name)
    i = _side_token(tokens)
    if i is not None and len(tokens) > 1:
        return tokens[i].lower() in ("left", "l")
    return name.lower().startswith("left") or name.lower().endswith("left") or bool(re.match(r"L[A-Z]", name))


def side_like(name: str) -> bool:
    """Whether a keypoint name looks like it belongs to one side of the body."""
    return _mirror_name(name) is not None


def unpaired_side_names(schema: KeypointSchema) -> list[str]:
    """Keypoints whose names look left/right but that are in no flip pair (flipping would not swap them)."""
    paired = {n for pair in schema.flip_pairs for n in pair}
    return [k for k in schema.keypoints if k not in paired and side_like(k)]


@dataclass(frozen=True)
class KeypointSchema:
    """An ordered keypoint set with everything needed to train, flip and evaluate on it.

    `flip_pairs`, `skeleton` and `groups` hold keypoint *names*; index views (`flip_index`, `skeleton_index`,
    `group_index`) are derived from them.
    """

    name: str
    keypoints: tuple[str, ...]
    sigmas: tuple[float, ...]
    flip_pairs: tuple[tuple[str, str], ...] = ()
    skeleton: tuple[tuple[str, str], ...] = ()
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    source: str = ""
    # keypoint -> other names dataset files give it (CrowdPose's `head` for head_top): accepted when a file's
    # category names are checked against this schema, on top of the spelling normaliser and the synonym table
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "keypoints", tuple(str(k) for k in self.keypoints))
        object.__setattr__(self, "sigmas", tuple(float(s) for s in self.sigmas))
        object.__setattr__(self, "flip_pairs", tuple((str(a), str(b)) for a, b in self.flip_pairs))
        object.__setattr__(self, "skeleton", tuple((str(a), str(b)) for a, b in self.skeleton))
        object.__setattr__(self, "groups", {str(g): tuple(str(n) for n in ns) for g, ns in self.groups.items()})
        object.__setattr__(self, "aliases", {str(k): tuple(str(n) for n in ns) for k, ns in self.aliases.items()})
        self._validate()

    # ------------------------------------------------------------------ validation
    def _validate(self) -> None:
        where = f"schema '{self.name}'"
        if not self.name or not isinstance(self.name, str):
            raise SchemaError("schema has no name")
        if not self.keypoints:
            raise SchemaError(f"{where}: no keypoints")
        seen: set[str] = set()
        dups = [k for k in self.keypoints if k in seen or seen.add(k)]  # type: ignore[func-returns-value]
        if dups:
            raise SchemaError(f"{where}: duplicate keypoint names: {', '.join(sorted(set(dups)))}")
        if len(self.sigmas) != len(self.keypoints):
            raise SchemaError(
                f"{where}: {len(self.sigmas)} sigmas for {len(self.keypoints)} keypoints (need one sigma each)"
            )
        bad = [s for s in self.sigmas if not (math.isfinite(s) and s > 0)]
        if bad:
            raise SchemaError(f"{where}: sigmas must be finite and > 0, got {bad[:3]}")
        names = set(self.keypoints)
        used: set[str] = set()
        for a, b in self.flip_pairs:
            for n in (a, b):
                if n not in names:
                    raise SchemaError(f"{where}: flip pair ({a}, {b}) names unknown keypoint '{n}'")
                if n in used:
                    raise SchemaError(f"{where}: keypoint '{n}' appears in more than one flip pair")
                used.add(n)
            if a == b:
                raise SchemaError(f"{where}: flip pair ({a}, {b}) pairs a keypoint with itself")
        for a, b in self.skeleton:
            for n in (a, b):
                if n not in names:
                    raise SchemaError(f"{where}: skeleton edge ({a}, {b}) names unknown keypoint '{n}'")
        for g, members in self.groups.items():
            unknown = [n for n in members if n not in names]
            if unknown:
                raise SchemaError(f"{where}: group '{g}' names unknown keypoints {unknown[:3]}")
        for k in self.aliases:
            if k not in names:
                raise SchemaError(f"{where}: aliases given for unknown keypoint '{k}'")

    # ------------------------------------------------------------------ views
    @property
    def num_keypoints(self) -> int:
        return len(self.keypoints)

    def __len__(self) -> int:
        return len(self.keypoints)

    def index(self, name: str) -> int:
        try:
            return self.keypoints.index(name)
        except ValueError:
            raise SchemaError(f"schema '{self.name}' has no keypoint '{name}'") from None

    @property
    def flip_index(self) -> tuple[int, ...]:
        """Permutation p such that flipped[..., i, :] = original[..., p[i], :] after mirroring x."""
        perm = list(range(len(self.keypoints)))
        for a, b in self.flip_pairs:
            ia, ib = self.index(a), self.index(b)
            perm[ia], perm[ib] = ib, ia
        return tuple(perm)

    @property
    def flip_pair_index(self) -> tuple[tuple[int, int], ...]:
        return tuple((self.index(a), self.index(b)) for a, b in self.flip_pairs)

    @property
    def skeleton_index(self) -> tuple[tuple[int, int], ...]:
        return tuple((self.index(a), self.index(b)) for a, b in self.skeleton)

    def group_index(self, group: str) -> tuple[int, ...]:
        if group not in self.groups:
            raise SchemaError(f"schema '{self.name}' has no group '{group}' (has: {', '.join(self.groups)})")
        return tuple(self.index(n) for n in self.groups[group])

    # ------------------------------------------------------------------ (de)serialisation
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "") -> KeypointSchema:
        """Build from the YAML layout; unknown top-level fields are an error (typos must not pass silently)."""
        if not isinstance(data, Mapping):
            raise SchemaError(f"schema {source or ''} must be a mapping with fields {', '.join(YAML_FIELDS)}")
        unknown = sorted(set(data) - set(YAML_FIELDS))
        if unknown:
            raise SchemaError(
                f"schema {data.get('name', source)!r}: unknown field(s) {unknown}; allowed: {', '.join(YAML_FIELDS)}"
            )
        for required in ("name", "keypoints", "sigmas"):
            if required not in data:
                raise SchemaError(f"schema {data.get('name', source)!r}: missing field '{required}'")
        keypoints = data["keypoints"]
        if not isinstance(keypoints, list) or not all(isinstance(k, str) for k in keypoints):
            raise SchemaError(f"schema {data['name']!r}: 'keypoints' must be a list of names")
        sigmas = data["sigmas"]
        if not isinstance(sigmas, list) or not all(isinstance(s, int | float) for s in sigmas):
            raise SchemaError(f"schema {data['name']!r}: 'sigmas' must be a list of numbers")
        flip = data.get("flip_pairs")
        flip_pairs = derive_flip_pairs(keypoints) if flip is None else _pairs(flip, data["name"], "flip_pairs")
        groups = data.get("groups") or {}
        if not isinstance(groups, Mapping) or not all(
            isinstance(m, list) and all(isinstance(n, str) for n in m) for m in groups.values()
        ):
            raise SchemaError(f"schema {data['name']!r}: 'groups' must map each group name to a list of keypoint names")
        aliases = data.get("aliases") or {}
        if not isinstance(aliases, Mapping) or not all(
            isinstance(m, list) and all(isinstance(n, str) for n in m) for m in aliases.values()
        ):
            raise SchemaError(f"schema {data['name']!r}: 'aliases' must map keypoint names to lists of other names")
        return cls(
            name=str(data["name"]),
            keypoints=tuple(keypoints),
            sigmas=tuple(sigmas),
            flip_pairs=flip_pairs,
            skeleton=_pairs(data.get("skeleton") or [], data["name"], "skeleton"),
            groups=dict(groups),
            source=source,
            aliases=dict(aliases),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "keypoints": list(self.keypoints),
            "sigmas": list(self.sigmas),
            "flip_pairs": [list(p) for p in self.flip_pairs],
            "skeleton": [list(e) for e in self.skeleton],
        }
        if self.groups:
            out["groups"] = {g: list(ns) for g, ns in self.groups.items()}
        if self.aliases:
            out["aliases"] = {k: list(ns) for k, ns in self.aliases.items()}
        return out

    @classmethod
    def from_yaml(cls, path: str | Path) -> KeypointSchema:
        import yaml

        path = Path(path)
        if path.is_dir():
            raise SchemaError(f"schema {path} is a folder, expected a schema YAML file")
        if not path.is_file():
            raise SchemaError(f"schema file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise SchemaError(f"cannot read schema file {path}: {exc.__class__.__name__}") from None
        except yaml.YAMLError as exc:
            line = getattr(getattr(exc, "problem_mark", None), "line", None)
            at = f" (line {line + 1})" if line is not None else ""
            raise SchemaError(f"schema file {path} is not valid YAML{at}") from None
        return cls.from_dict(data, source=str(path))

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None, width=120)


def _pairs(value: Iterable[Any], schema: str, what: str) -> tuple[tuple[str, str], ...]:
    out = []
    for item in value:
        if not isinstance(item, list | tuple) or len(item) != 2:
            raise SchemaError(f"schema {schema!r}: each entry of '{what}' must be a pair of names, got {item!r}")
        out.append((str(item[0]), str(item[1])))
    return tuple(out)
