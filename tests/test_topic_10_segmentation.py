"""Topic 10_segmentation: mutants the hidden tests must reject, plus the shared topic checks."""

from harness import Mutant, check_autograde, check_mutants, check_release, check_structure

MUTANTS = [
    # conv_transpose2d
    Mutant("conv_transpose2d", "flips the kernel (that is conv2d's adjoint written as a correlation)",
           old="weight[:, :, i, j])", new="weight[:, :, K_h - 1 - i, K_w - 1 - j])", visible=True),
    Mutant("conv_transpose2d", "weight read as (C_out, C_in, K, K)", old='"nchw,co->nohw"', new='"nchw,oc->nohw"', visible=True),
    Mutant("conv_transpose2d", "padding cropped from the end only", old="out = buf[:, :, p:p + H_out, p:p + W_out]",
           new="out = buf[:, :, :H_out, :W_out]", visible=True),
    Mutant("conv_transpose2d", "ignores output_padding", old="H_out = (H - 1) * s - 2 * p + K_h + output_padding",
           new="H_out = (H - 1) * s - 2 * p + K_h", visible=True),
    Mutant("conv_transpose2d", "kernel offsets scaled by the stride", old="buf[:, :, i:i + s * (H - 1) + 1:s, j:j + s * (W - 1) + 1:s]",
           new="buf[:, :, i * s:i * s + s * (H - 1) + 1:s, j * s:j * s + s * (W - 1) + 1:s]", visible=True),
    # UNet
    Mutant("UNet", "ReLU on the logits", old="return self.head(x)", new="return F.relu(self.head(x))", visible=True),
    Mutant("UNet", "skip order reversed (upsampled first)", old="torch.cat([skips.pop(), up(x)], dim=1)",
           new="torch.cat([up(x), skips.pop()], dim=1)", visible=True),
    Mutant("UNet", "convs with bias and no BatchNorm", old="""                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))""",
           new="""                nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(c_out, c_out, 3, padding=1), nn.ReLU(inplace=True))""", visible=True),
    Mutant("UNet", "adds the skip instead of concatenating", old="x = block(torch.cat([skips.pop(), up(x)], dim=1))",
           new="x = block(torch.cat([skips.pop() + up(x)] * 2, dim=1))", visible=True),
    Mutant("UNet", "single conv per block", old="""                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))""",
           new="""                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))""", visible=True),
    # pixel_accuracy
    Mutant("pixel_accuracy", "counts instead of a fraction", old="return float((pred == target).double().mean())",
           new="return float((pred == target).double().sum())", visible=True),
    Mutant("pixel_accuracy", "foreground pixels only", old="return float((pred == target).double().mean())",
           new="return float((pred == target)[target > 0].double().mean())", visible=True),
    Mutant("pixel_accuracy", "arg-max over the last axis", old="pred = pred.argmax(dim=1)", new="pred = pred.argmax(dim=-1)",
           visible=True),
    Mutant("pixel_accuracy", "ignored pixels scored as wrong", old="pred, target = pred[keep], target[keep]\n",
           new="pred = torch.where(keep, pred, -12345)\n", visible=True),
    Mutant("pixel_accuracy", "ignore judged on the prediction", old="else target != ignore_index",
           new="else pred != ignore_index", visible=True),
    Mutant("pixel_accuracy", "nothing to score returns 0", old='return float("nan")', new="return 0.0", visible=True),
    Mutant("pixel_accuracy", "balanced over the classes of prediction and target",
           old="for c in target.unique()]", new="for c in torch.cat([target, pred]).unique()]", visible=True),
    Mutant("pixel_accuracy", "balanced as per-class precision instead of recall",
           old="float((pred[target == c] == c).double().mean())", new="float((target[pred == c] == c).double().mean())",
           visible=True),
    Mutant("pixel_accuracy", "balanced ignores the ignore_index", old="    pred, target = pred[keep], target[keep]\n",
           new="    if not balanced:\n        pred, target = pred[keep], target[keep]\n", visible=True),
    # miou
    Mutant("miou", "absent classes count as IoU 0", old="""        if union > 0:
            ious.append(float((p & t).sum()) / float(union))""",
           new="""        ious.append(float((p & t).sum()) / max(float(union), 1.0))""", visible=True),
    Mutant("miou", "absent classes count as IoU 1", old="""        if union > 0:
            ious.append(float((p & t).sum()) / float(union))""",
           new="""        ious.append(float((p & t).sum()) / float(union) if union > 0 else 1.0)""", visible=True),
    Mutant("miou", "union = |P| + |T| (intersection counted twice)", old="union = (p | t).sum()", new="union = p.sum() + t.sum()", visible=True),
    Mutant("miou", "background left out", old="for c in range(num_classes):", new="for c in range(1, num_classes):", visible=True),
    # train_unet
    Mutant("train_unet", "far too short training", old="segmenter = train_unet(num_epochs=8)",
           new="segmenter = train_unet(num_epochs=1)", visible=True),
    Mutant("train_unet", "learning rate far too high", old="batch_size, lr = 16, 5e-3", new="batch_size, lr = 16, 0.5", visible=True),
    Mutant("train_unet", "labels shifted by one in the loss", old="ce = F.cross_entropy(logits, y, weight=weights)",
           new="ce = F.cross_entropy(logits, (y + 1) % 4, weight=weights)", visible=True),
    Mutant("train_unet", "optimizer never steps", old="            optimizer.step()\n", new="\n", visible=True),
]

TOPIC = "10_segmentation"


def test_exercise_structure():
    check_structure(TOPIC, MUTANTS)


def test_mutants_rejected():
    check_mutants(TOPIC, MUTANTS)


def test_autograde_scores(tmp_path):
    check_autograde(TOPIC, tmp_path)


def test_release_matches_source_cells():
    check_release(TOPIC)
