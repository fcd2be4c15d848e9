"""The adaptive evaluation's random streams, named: one `SeedPlan` per evaluation seed.

Every stream is a plain integer seed derived from the evaluation's `seed`, so a result is
reproduced exactly by the same seed. The streams (and their integers, which results.json numbers
depend on: changing one changes the reported accuracies):

    subset       seed              which test rows form the subset
    clean        seed + 1          clean and transfer-copy correctness, the eps=0 check
    large_eps    seed              the large-eps check
    sweep(i)     seed + 1000 * i   the i-th PGD configuration of the sweep (counted over all eps)
    suite(i)     seed + 100 * i    the suite at the i-th eps (ascending)
    chunk(s, c)  s + 10007 * c     chunk c of the suite whose seed is s (chunk 0: s itself, so a
                                   subset in one chunk has the un-chunked cascade's numbers)

Inside a stream the cascade derives its own per-attack generators (core.evaluation.adaptive.cascade).
"""

from __future__ import annotations

from dataclasses import dataclass

SWEEP_STRIDE = 1000
SUITE_STRIDE = 100
CHUNK_STRIDE = 10007


@dataclass(frozen=True)
class SeedPlan:
    """Named seed streams of one adaptive evaluation (see the module docstring)."""

    seed: int

    @property
    def subset(self) -> int:
        return self.seed

    @property
    def clean(self) -> int:
        return self.seed + 1

    @property
    def eps0(self) -> int:
        return self.clean

    @property
    def large_eps(self) -> int:
        return self.seed

    def sweep(self, index: int) -> int:
        """The `index`-th PGD configuration of the sweep, counted over every eps."""
        return self.seed + SWEEP_STRIDE * index

    def suite(self, index: int) -> int:
        """The suite at the `index`-th eps of the ascending sweep."""
        return self.seed + SUITE_STRIDE * index

    @staticmethod
    def chunk(suite_seed: int, index: int) -> int:
        """Chunk `index` of a suite run seeded `suite_seed` (core.evaluation.adaptive.chunked)."""
        return suite_seed + CHUNK_STRIDE * index
