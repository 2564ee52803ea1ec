"""Topic 11_interpretability: mutants the hidden tests must reject, plus the shared topic checks."""
from harness import Mutant, check_autograde, check_mutants, check_release, check_structure

_RESTORE = "    finally:\n        for m, flag in flags:\n            m.training = flag\n"

MUTANTS = [
    # saliency_map
    Mutant("saliency_map", "signed gradient: no absolute value",
           old="return grad.abs().amax(dim=1)", new="return grad.amax(dim=1)", visible=True),
    Mutant("saliency_map", "sum over channels instead of the max",
           old="return grad.abs().amax(dim=1)", new="return grad.abs().sum(dim=1)"),
    Mutant("saliency_map", "gradient of the softmax probability instead of the logit",
           old="scores = model(x).gather(", new="scores = model(x).softmax(dim=1).gather("),
    Mutant("saliency_map", "model left in train mode (dropout active, BatchNorm on batch statistics)",
           old="    model.eval()\n", new="", visible=True),
    Mutant("saliency_map", "eval mode forced and never undone",
           old=_RESTORE, new="    finally:\n        pass\n", visible=True),
    Mutant("saliency_map", "backward() into the parameters' .grad",
           old="(grad,) = torch.autograd.grad(scores, x)", new="scores.backward()\n        grad = x.grad",
           visible=True),
    # grad_cam
    Mutant("grad_cam", "no ReLU on the weighted sum",
           old="cam = F.relu((weights * saved[\"act\"]).sum(dim=1, keepdim=True)).detach()",
           new="cam = (weights * saved[\"act\"]).sum(dim=1, keepdim=True).detach()"),
    Mutant("grad_cam", "weights summed over the map instead of averaged",
           old="weights = saved[\"grad\"].mean(dim=(2, 3), keepdim=True)",
           new="weights = saved[\"grad\"].sum(dim=(2, 3), keepdim=True)", visible=True),
    Mutant("grad_cam", "nearest-neighbour upsampling",
           old="mode=\"bilinear\", align_corners=False", new="mode=\"nearest\""),
    Mutant("grad_cam", "bilinear upsampling with align_corners=True",
           old="align_corners=False", new="align_corners=True"),
    Mutant("grad_cam", "hooks removed only when nothing goes wrong",
           old="    finally:\n        handle.remove()\n", new="        handle.remove()\n    finally:\n", visible=True),
    Mutant("grad_cam", "weights from the activations instead of their gradients",
           old="weights = saved[\"grad\"].mean(", new="weights = saved[\"act\"].mean("),
    Mutant("grad_cam", "backward() into the parameters' .grad",
           old="torch.autograd.grad(scores, x)", new="scores.backward()"),
    # occlusion_map
    Mutant("occlusion_map", "windows that would stick out are skipped (border pixels never occluded)",
           old="range(0, H - patch + stride, stride)", new="range(0, H - patch + 1, stride)", visible=True),
    Mutant("occlusion_map", "sum of the drops instead of their mean",
           old="return total / count", new="return total", visible=True),
    Mutant("occlusion_map", "sign flipped: occluded score minus clean score",
           old="drop = base - model(hidden)", new="drop = -base + model(hidden)",
           visible=True),
    Mutant("occlusion_map", "fill value ignored (always zero)",
           old="= fill\n", new="= 0.0\n", visible=True),
    Mutant("occlusion_map", "mode never restored",
           old=_RESTORE, new="    finally:\n        pass\n"),
    Mutant("occlusion_map", "only the first channel occluded",
           old="hidden[:, :, top:top + patch", new="hidden[:, :1, top:top + patch"),
    # fgsm
    Mutant("fgsm", "steps down the loss gradient",
           old="return (x.detach() + eps * grad.sign())", new="return (x.detach() - eps * grad.sign())", visible=True),
    Mutant("fgsm", "no clamp to the pixel range",
           old="return (x.detach() + eps * grad.sign()).clamp(0.0, 1.0)", new="return x.detach() + eps * grad.sign()",
           visible=True),
    Mutant("fgsm", "raw gradient instead of its sign",
           old="eps * grad.sign()", new="eps * grad"),
    Mutant("fgsm", "attacks the model's prediction instead of the label",
           old="F.cross_entropy(model(x_adv), y.to(x.device))",
           new="F.cross_entropy(model(x_adv), model(x_adv).argmax(1).detach())"),
    Mutant("fgsm", "model left in train mode",
           old="    model.eval()\n", new="", visible=True),
    # pgd
    Mutant("pgd", "no projection onto the eps-ball",
           old="x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0.0, 1.0)",
           new="x_adv = x_adv.clamp(0.0, 1.0)", visible=True),
    Mutant("pgd", "projects onto a ball of radius alpha instead of eps",
           old="x_adv = torch.min(torch.max(x_adv, x - eps), x + eps)",
           new="x_adv = torch.min(torch.max(x_adv, x - alpha), x + alpha)"),
    Mutant("pgd", "random start ignores the generator",
           old="torch.rand(x.shape, generator=generator,", new="torch.rand(x.shape,", visible=True),
    Mutant("pgd", "random start not clamped to [0, 1]",
           old="x_adv = (x + (2 * noise - 1) * eps).clamp(0.0, 1.0)", new="x_adv = x + (2 * noise - 1) * eps"),
    Mutant("pgd", "random start in [0, eps) instead of (-eps, eps)",
           old="(2 * noise - 1) * eps", new="noise * eps"),
    Mutant("pgd", "gradient always taken at the clean input",
           old="loss = F.cross_entropy(model(x_adv), y)\n            (grad,) = torch.autograd.grad(loss, x_adv)",
           new="x_in = x.clone().requires_grad_(True)\n            loss = F.cross_entropy(model(x_in), y)\n"
               "            (grad,) = torch.autograd.grad(loss, x_in)"),
    Mutant("pgd", "step of size eps instead of alpha",
           old="alpha * grad.sign()", new="eps * grad.sign()"),
    Mutant("pgd", "backward() into the parameters' .grad",
           old="(grad,) = torch.autograd.grad(loss, x_adv)", new="loss.backward()\n            grad = x_adv.grad",
           visible=True),
    # accuracy_under_attack
    Mutant("accuracy_under_attack", "mean of per-batch accuracies",
           old="correct += int((model(X).argmax(dim=1) == y).sum())\n            total += len(y)",
           new="correct += float((model(X).argmax(dim=1) == y).float().mean())\n            total += 1",
           visible=True),
    Mutant("accuracy_under_attack", "predicts on the clean batch",
           old="                X = attack(model, X, y, **kw)\n", new="                attack(model, X, y, **kw)\n",
           visible=True),
    Mutant("accuracy_under_attack", "model left in train mode",
           old="    model.eval()\n", new="", visible=True),
    Mutant("accuracy_under_attack", "flags never restored",
           old=_RESTORE, new="    finally:\n        pass\n", visible=True),
    Mutant("accuracy_under_attack", "percent instead of a fraction",
           old="return correct / total", new="return 100.0 * correct / total", visible=True),
    # effective_rf
    Mutant("effective_rf", "signed gradient",
           old="erf = grad[0].abs().sum(dim=0)", new="erf = grad[0].sum(dim=0)", visible=True),
    Mutant("effective_rf", "normalised by the maximum",
           old="return erf / erf.sum()", new="return erf / erf.max()", visible=True),
    Mutant("effective_rf", "off-centre unit for even sizes",
           old="out[0, :, out.shape[2] // 2, out.shape[3] // 2]",
           new="out[0, :, (out.shape[2] - 1) // 2, (out.shape[3] - 1) // 2]", visible=True),
    Mutant("effective_rf", "input of zeros",
           old="x = torch.ones(", new="x = torch.zeros("),
    Mutant("effective_rf", "model left in train mode",
           old="    model.eval()\n", new=""),
]

TOPIC = "11_interpretability"


def test_exercise_structure():
    check_structure(TOPIC, MUTANTS)


def test_mutants_rejected():
    check_mutants(TOPIC, MUTANTS)


def test_autograde_scores(tmp_path):
    check_autograde(TOPIC, tmp_path)


def test_release_matches_source_cells():
    check_release(TOPIC)
