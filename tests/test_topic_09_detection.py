"""Topic 09_detection: mutants the hidden tests must reject, plus the shared topic checks."""

from harness import Mutant, check_autograde, check_mutants, check_release, check_structure

MUTANTS = [
    # box_iou
    Mutant("box_iou", "no clamp: disjoint boxes get a positive 'overlap'", old="(bottom_right - top_left).clamp(min=0)",
           new="(bottom_right - top_left)", visible=True),
    Mutant("box_iou", "union forgets to subtract the intersection", old="area2[None, :] - inter", new="area2[None, :]", visible=True),
    Mutant("box_iou", "pixel-inclusive widths (+1)", old="wh = (bottom_right - top_left).clamp(min=0)",
           new="wh = (bottom_right - top_left + 1).clamp(min=0)", visible=True),
    Mutant("box_iou", "intersection corners swapped (min of top-left)",
           old="top_left = torch.maximum(", new="top_left = torch.minimum(", visible=True),
    # nms
    Mutant("nms", "sorts by increasing score", old="torch.argsort(scores, descending=True)", new="torch.argsort(scores)", visible=True),
    Mutant("nms", "suppresses at IoU == threshold too", old="<= iou_threshold", new="< iou_threshold", visible=True),
    Mutant("nms", "returns positions in the sorted order", old="keep.append(int(order[pos]))", new="keep.append(pos)", visible=True),
    Mutant("nms", "suppressed boxes still suppress others",
           old="            keep.append(int(order[pos]))\n            alive[pos + 1:]",
           new="            keep.append(int(order[pos]))\n        if True:\n            alive[pos + 1:]", visible=True),
    # make_anchors
    Mutant("make_anchors", "centres on the cell corner (no + 0.5)", old=" + 0.5) * stride", new=") * stride", visible=True),
    Mutant("make_anchors", "ratio taken as height / width", old="widths = (s * r.sqrt())", new="widths = (s / r.sqrt())", visible=True),
    Mutant("make_anchors", "ratio outer, size inner", old="""    widths = (s * r.sqrt()).reshape(-1)
    heights = (s / r.sqrt()).reshape(-1)""", new="""    widths = (s * r.sqrt()).t().reshape(-1)
    heights = (s / r.sqrt()).t().reshape(-1)"""),
    Mutant("make_anchors", "ignores the device (anchors stay on the CPU)", old=", device=device)", new=")", visible=True),
    Mutant("make_anchors", "cell centres on the CPU, sizes on the device",
           old="torch.arange(H, dtype=torch.float32, device=device)", new="torch.arange(H, dtype=torch.float32)", visible=True),
    Mutant("make_anchors", "meshgrid in xy order (columns vary slowest)", old="* stride, indexing=\"ij\")",
           new="* stride, indexing=\"xy\")", visible=True),
    # encode_boxes
    Mutant("encode_boxes", "dx and dy normalized by the wrong side", old="dx = (bx - ax) / aw\n    dy = (by - ay) / ah",
           new="dx = (bx - ax) / ah\n    dy = (by - ay) / aw", visible=True),
    Mutant("encode_boxes", "sizes not in log space", old="dw = torch.log(bw / aw)\n    dh = torch.log(bh / ah)",
           new="dw = bw / aw - 1\n    dh = bh / ah - 1", visible=True),
    Mutant("encode_boxes", "uses the corner instead of the centre", old="bx = boxes[:, 0] + 0.5 * bw", new="bx = boxes[:, 0]", visible=True),
    Mutant("encode_boxes", "offsets in box units instead of anchor units", old="dx = (bx - ax) / aw", new="dx = (bx - ax) / bw"),
    # decode_boxes
    Mutant("decode_boxes", "forgets the exp", old="w = aw * torch.exp(deltas[:, 2])", new="w = aw * deltas[:, 2]", visible=True),
    Mutant("decode_boxes", "offset not scaled by the anchor size", old="x = ax + deltas[:, 0] * aw", new="x = ax + deltas[:, 0]", visible=True),
    Mutant("decode_boxes", "full width on each side of the centre",
           old="torch.stack([x - 0.5 * w, y - 0.5 * h, x + 0.5 * w, y + 0.5 * h]",
           new="torch.stack([x - w, y - h, x + w, y + h]", visible=True),
    Mutant("decode_boxes", "dw and dh swapped", old="torch.exp(deltas[:, 2])", new="torch.exp(deltas[:, 3])", visible=True),
    # focal_loss
    Mutant("focal_loss", "alpha on the negatives", old="alpha_t = alpha * targets + (1 - alpha) * (1 - targets)",
           new="alpha_t = (1 - alpha) * targets + alpha * (1 - targets)", visible=True),
    Mutant("focal_loss", "modulating factor p_t^gamma", old="(1 - p_t) ** gamma", new="p_t ** gamma", visible=True),
    Mutant("focal_loss", "unstable log of the sigmoid",
           old='ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")',
           new="ce = -(targets * torch.log(p) + (1 - targets) * torch.log(1 - p))", visible=True),
    Mutant("focal_loss", "mean reduction returns the sum", old="return loss.mean()", new="return loss.sum()"),
    Mutant("focal_loss", "modulating factor ignores the target", old="(1 - p_t) ** gamma", new="(1 - p) ** gamma"),
    # average_precision
    Mutant("average_precision", "no precision envelope", old="envelope = torch.cummax(precision.flip(0), 0).values.flip(0)",
           new="envelope = precision", visible=True),
    Mutant("average_precision", "ranks by increasing score", old="torch.argsort(scores, descending=True)",
           new="torch.argsort(scores)", visible=True),
    Mutant("average_precision", "recall over the detections instead of the objects", old="recall = tp_cum / num_gt",
           new="recall = tp_cum / len(tp)", visible=True),
    Mutant("average_precision", "envelope taken from the left", old="torch.cummax(precision.flip(0), 0).values.flip(0)",
           new="torch.cummax(precision, 0).values", visible=True),
    # mean_average_precision
    Mutant("mean_average_precision", "a box can be claimed twice", old="and not bool(claimed[i][best])", new="", visible=True),
    Mutant("mean_average_precision", "matches against every class", old='gt = targets[i]["boxes"][targets[i]["labels"] == c]',
           new='gt = targets[i]["boxes"]', visible=True),
    Mutant("mean_average_precision", "IoU must exceed the threshold strictly", old="ious[best] >= iou_threshold",
           new="ious[best] > iou_threshold", visible=True),
    Mutant("mean_average_precision", "sorted by increasing score", old="dets.sort(key=lambda d: -d[0])",
           new="dets.sort(key=lambda d: d[0])", visible=True),
    Mutant("mean_average_precision", "averages over every predicted class too",
           old='classes = sorted({int(c) for t in targets for c in t["labels"]})',
           new='classes = sorted({int(c) for t in targets + preds for c in t["labels"]})'),
    # train_detector (detect + training)
    Mutant("train_detector", "boxes left in grid cells (stride forgotten)", old="w, h = w * STRIDE, h * STRIDE",
           new="w, h = w, h", visible=True),
    Mutant("train_detector", "every cell above the threshold is a detection (no peak test)",
           old="peaks = (heat == F.max_pool2d(heat, 3, stride=1, padding=1)) & (heat > score_threshold)",
           new="peaks = heat > score_threshold", visible=True),
    Mutant("train_detector", "the box loss covers every cell, not only object centres",
           old="((out[:, 3:] - boxes).abs() * mask[:, None]).sum()", new="(out[:, 3:] - boxes).abs().sum()", visible=True),
    Mutant("train_detector", "centre offset ignored", old="cx, cy = (col + ox) * STRIDE, (row + oy) * STRIDE",
           new="cx, cy = col * STRIDE, row * STRIDE", visible=True),
    Mutant("train_detector", "far too short training", old="detector = train_detector(num_epochs=12)",
           new="detector = train_detector(num_epochs=2)", visible=True),
]

TOPIC = "09_detection"


def test_exercise_structure():
    check_structure(TOPIC, MUTANTS)


def test_mutants_rejected():
    check_mutants(TOPIC, MUTANTS)


def test_autograde_scores(tmp_path):
    check_autograde(TOPIC, tmp_path)


def test_release_matches_source_cells():
    check_release(TOPIC)
