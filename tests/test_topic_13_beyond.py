"""Topic 13_beyond: mutants the hidden tests must reject, plus the shared topic checks."""
from harness import Mutant, check_autograde, check_mutants, check_release, check_structure

_GRID = ".permute(0, 2, 4, 1, 3, 5)"
_MEAN_LOOP = ("            mean = torch.stack([p.grad for p in params]).mean(dim=0)\n"
              "            for p in params:\n"
              "                p.grad.copy_(mean)\n")
_SIZE = "o = (sizes[axis] + 2 * p[axis] - d[axis] * (k[axis] - 1) - 1) // s[axis] + 1"

MUTANTS = [
    # patch_embed
    Mutant("patch_embed", "patches in column-major order", old=_GRID, new=".permute(0, 4, 2, 1, 3, 5)",
           visible=True),
    Mutant("patch_embed", "pixels flattened as (p, p, C), not in the kernel's (C, p, p) order",
           old=_GRID, new=".permute(0, 2, 4, 3, 5, 1)", visible=True),
    Mutant("patch_embed", "bias forgotten", old=" + bias\n", new="\n", visible=True),
    Mutant("patch_embed", "a plain reshape without the permute (mixes patches)",
           old=f"patches = x.reshape(N, C, gh, patch, gw, patch){_GRID}", new="patches = x", visible=True),
    Mutant("patch_embed", "no size check: a ragged last patch is silently accepted or crashes",
           old="if H % patch or W % patch:", new="if False:", visible=True),
    # nt_xent_loss
    Mutant("nt_xent_loss", "the anchor itself stays in the denominator",
           old='sim = sim.masked_fill(self_mask, float("-inf"))', new="sim = sim", visible=True),
    Mutant("nt_xent_loss", "embeddings not normalised (dot products, not cosines)",
           old="F.normalize(torch.cat([z1, z2], dim=0), dim=1)", new="torch.cat([z1, z2], dim=0)", visible=True),
    Mutant("nt_xent_loss", "normalised along the batch axis instead of per embedding",
           old="F.normalize(torch.cat([z1, z2], dim=0), dim=1)",
           new="F.normalize(torch.cat([z1, z2], dim=0), dim=0)", visible=True),
    Mutant("nt_xent_loss", "temperature multiplies instead of divides",
           old="sim = z @ z.T / temperature", new="sim = z @ z.T * temperature", visible=True),
    Mutant("nt_xent_loss", "only the first view's N anchors are averaged",
           old="return F.cross_entropy(sim, targets)", new="return F.cross_entropy(sim[:n], targets[:n])"),
    Mutant("nt_xent_loss", "cross-view InfoNCE: negatives only from the other view (the lecture's loss)",
           old="return F.cross_entropy(sim, targets)",
           new="return (F.cross_entropy(sim[:n, n:], torch.arange(n, device=z.device))"
               " + F.cross_entropy(sim[n:, :n], torch.arange(n, device=z.device))) / 2",
           visible=True),
    Mutant("nt_xent_loss", "gradient cut through one side of the similarity",
           old="sim = z @ z.T / temperature", new="sim = z @ z.T.detach() / temperature", visible=True),
    # conv3d_output_shape
    Mutant("conv3d_output_shape", "dilation ignored",
           old="- d[axis] * (k[axis] - 1) - 1", new="- (k[axis] - 1) - 1", visible=True),
    Mutant("conv3d_output_shape", "padding added on one side only",
           old="+ 2 * p[axis]", new="+ p[axis]", visible=True),
    Mutant("conv3d_output_shape", "rounds up instead of down",
           old=_SIZE,
           new="o = math.ceil((sizes[axis] + 2 * p[axis] - d[axis] * (k[axis] - 1) - 1) / s[axis]) + 1",
           visible=True),
    Mutant("conv3d_output_shape", "a per-axis tuple read as its first entry on every axis",
           old="tuple(int(a) for a in v)", new="(int(v[0]),) * 3", visible=True),
    Mutant("conv3d_output_shape", "empty outputs accepted", old="if o < 1:", new="if o < 0:", visible=True),
    Mutant("conv3d_output_shape", "input channels instead of output channels",
           old="return (n, int(out_channels),", new="return (n, _c,", visible=True),
    # allreduce_mean_grads
    Mutant("allreduce_mean_grads", "sum instead of mean (what dist.all_reduce returns by default)",
           old=".mean(dim=0)", new=".sum(dim=0)", visible=True),
    Mutant("allreduce_mean_grads", "only the first replica receives the mean",
           old="            for p in params:\n                p.grad.copy_(mean)\n",
           new="            params[0].grad.copy_(mean)\n", visible=True),
    Mutant("allreduce_mean_grads", "mean recomputed after earlier replicas were overwritten",
           old=_MEAN_LOOP,
           new="            for p in params:\n"
               "                p.grad.copy_(torch.stack([q.grad for q in params]).mean(dim=0))\n",
           visible=True),
    Mutant("allreduce_mean_grads", "new gradient tensors assigned instead of writing in place",
           old="p.grad.copy_(mean)", new="p.grad = mean.clone()", visible=True),
    Mutant("allreduce_mean_grads", "parameters averaged instead of gradients",
           old=_MEAN_LOOP,
           new="            mean = torch.stack([p for p in params]).mean(dim=0)\n"
               "            for p in params:\n"
               "                p.copy_(mean)\n",
           visible=True),
    Mutant("allreduce_mean_grads", "divides by 2 whatever the number of replicas",
           old=".mean(dim=0)", new=".sum(dim=0) / 2"),
]

TOPIC = "13_beyond"


def test_exercise_structure():
    check_structure(TOPIC, MUTANTS)


def test_mutants_rejected():
    check_mutants(TOPIC, MUTANTS)


def test_autograde_scores(tmp_path):
    check_autograde(TOPIC, tmp_path)


def test_release_matches_source_cells():
    check_release(TOPIC)
