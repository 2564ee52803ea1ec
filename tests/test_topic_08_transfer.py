"""Topic 08_transfer: mutants the hidden tests must reject, plus the shared topic checks."""
from harness import Mutant, check_autograde, check_mutants, check_release, check_structure

MUTANTS = [
    # count_trainable
    Mutant("count_trainable", "counts frozen parameters too",
           old="for p in model.parameters() if p.requires_grad)", new="for p in model.parameters())", visible=True),
    Mutant("count_trainable", "counts parameter tensors instead of their elements",
           old="sum(p.numel() for p", new="sum(1 for p", visible=True),
    Mutant("count_trainable", "counts BatchNorm buffers as parameters",
           old="sum(p.numel() for p in model.parameters() if p.requires_grad)",
           new="sum(p.numel() for p in model.parameters() if p.requires_grad) + sum(b.numel() for b in model.buffers())",
           visible=True),
    Mutant("count_trainable", "a shared parameter counted once per use",
           old="for p in model.parameters() if", new="for _, p in model.named_parameters(remove_duplicate=False) if"),
    # freeze_backbone
    Mutant("freeze_backbone", "BatchNorms switched to eval once, undone by the next model.train()",
           old="    model.train = train\n    model.train(model.training)\n",
           new="    for m in frozen_norms:\n        m.eval()\n", visible=True),
    Mutant("freeze_backbone", "running statistics frozen with momentum=0 (still normalises with batch statistics)",
           old="    model.train = train\n",
           new="    for m in frozen_norms:\n        m.momentum = 0.0\n", visible=True),
    Mutant("freeze_backbone", "freezes the head and trains the backbone",
           old="p.requires_grad_(name.startswith(prefixes))", new="p.requires_grad_(not name.startswith(prefixes))",
           visible=True),
    Mutant("freeze_backbone", "every BatchNorm kept in eval mode, the head's too",
           old="if isinstance(m, nn.modules.batchnorm._BatchNorm) and not (name + \".\").startswith(prefixes)]",
           new="if isinstance(m, nn.modules.batchnorm._BatchNorm)]"),
    Mutant("freeze_backbone", "prefix matched anywhere in the name instead of at the start",
           old="p.requires_grad_(name.startswith(prefixes))",
           new="p.requires_grad_(any(q in name for q in prefixes))"),
    Mutant("freeze_backbone", "only BatchNorm2d handled (BatchNorm1d layers keep training)",
           old="if isinstance(m, nn.modules.batchnorm._BatchNorm) and not",
           new="if isinstance(m, nn.BatchNorm2d) and not"),
    Mutant("freeze_backbone", "model.eval() no longer reaches the model (train ignores its mode)",
           old="        original_train(mode)\n", new="        original_train(True)\n"),
    # replace_head
    Mutant("replace_head", "keeps the old number of classes",
           old="nn.Linear(old.in_features, num_classes,", new="nn.Linear(old.in_features, old.out_features,",
           visible=True),
    Mutant("replace_head", "head created in float32 whatever the model's dtype",
           old="dtype=old.weight.dtype)", new="dtype=torch.float32)"),
    Mutant("replace_head", "head created on the CPU whatever the model's device",
           old="device=old.weight.device,", new="device=\"cpu\","),
    Mutant("replace_head", "always a bias",
           old="bias=old.bias is not None,", new="bias=True,"),
    Mutant("replace_head", "zero-initialised head instead of nn.Linear's initialisation",
           old="    return model\n", new="    nn.init.zeros_(model.fc.weight)\n    return model\n"),
    Mutant("replace_head", "copies the old head's weights into the new one",
           old="    return model\n",
           new="    with torch.no_grad():\n        k = min(num_classes, old.out_features)\n"
               "        model.fc.weight[:k] = old.weight[:k].to(model.fc.weight.device)\n    return model\n"),
    # param_groups
    Mutant("param_groups", "head and backbone learning rates swapped",
           old="\"lr\": head_lr if is_head else backbone_lr", new="\"lr\": backbone_lr if is_head else head_lr",
           visible=True),
    Mutant("param_groups", "weight decay on biases",
           old="no_decay = param_name.endswith(\"bias\") or isinstance(module, NORM_TYPES)",
           new="no_decay = isinstance(module, NORM_TYPES)", visible=True),
    Mutant("param_groups", "weight decay on normalisation weights (only biases exempt)",
           old="no_decay = param_name.endswith(\"bias\") or isinstance(module, NORM_TYPES)",
           new="no_decay = param_name.endswith(\"bias\")", visible=True),
    Mutant("param_groups", "only BatchNorm counted as normalisation",
           old="isinstance(module, NORM_TYPES)", new="isinstance(module, nn.BatchNorm2d)"),
    Mutant("param_groups", "frozen parameters put in the groups too",
           old="if not p.requires_grad or id(p) in seen:", new="if id(p) in seen:"),
    Mutant("param_groups", "prefix matched anywhere in the name",
           old="groups.setdefault((name.startswith(prefixes), no_decay), [])",
           new="groups.setdefault((any(q in name for q in prefixes), no_decay), [])"),
    Mutant("param_groups", "a tied parameter listed once per module that uses it",
           old="            seen.add(id(p))\n", new=""),
    # finetune
    Mutant("finetune", "starts from a randomly initialised network instead of the pretrained backbone",
           old="replace_head(load_backbone(X.device), num_classes=5)",
           new="replace_head(DigitsNet().to(X.device), num_classes=5)"),
    Mutant("finetune", "learning rates 1000x too small",
           old="backbone_lr=3e-3, head_lr=1e-2", new="backbone_lr=3e-6, head_lr=1e-5", visible=True),
    Mutant("finetune", "over budget: ten optimizer steps per allowed step",
           old="for _step in range(num_steps):", new="for _step in range(10 * num_steps):", visible=True),
    Mutant("finetune", "a single optimizer step",
           old="for _step in range(num_steps):", new="for _step in range(1):", visible=True),
]

TOPIC = "08_transfer"


def test_exercise_structure():
    check_structure(TOPIC, MUTANTS)


def test_mutants_rejected():
    check_mutants(TOPIC, MUTANTS)


def test_autograde_scores(tmp_path):
    check_autograde(TOPIC, tmp_path)


def test_release_matches_source_cells():
    check_release(TOPIC)
