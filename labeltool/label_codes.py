"""The names a label carries beside its points: merged parts, fixed source codes, part statuses.

One small module with no imports, so the merge, the teachers, the distill pipeline, the labels
table and review all name the same values without importing one another. The values are
stored in every output (labels.parquet, summary.json): never change one, only append.
"""

# The parts the merge fills from teachers, in COCO-WholeBody order (each has a _valid and a _status
# column in labels.parquet); the body comes from the input.
MERGED_PARTS = ("foot", "face", "lefthand", "righthand")

# Fixed source codes (an index into the run's source names); teacher names follow from len(FIXED_SOURCES) on.
SOURCE_NONE = 0
SOURCE_GT = 1
SOURCE_DERIVED = 2
SOURCE_MAPPED = 3  # ground truth of another dataset's layout, copied to the COCO point of the same name
FIXED_SOURCES = ("none", "gt", "derived", "mapped")

# Per-part outcome of the merge, one string per person and part (a column of labels.parquet).
ACCEPTED = "accepted"
NO_PROPOSAL = "no_proposal"  # the body points the crop is built from are missing
NO_DETECTION = "no_detection"  # the teacher ran and predicted nothing
LOW_CONFIDENCE = "low_confidence"
OUTSIDE_PROPOSAL = "outside_proposal"  # face points centred outside the proposed box
HANDEDNESS_MISMATCH = "handedness_mismatch"
FAR_FROM_WRIST = "far_from_wrist"  # hand root far from the body wrist
FAR_FROM_ANKLE = "far_from_ankle"  # no foot point near a labelled ankle
TOO_FEW_POINTS = "too_few_points"
DEGENERATE = "degenerate"  # face / hand points collapsed onto (nearly) one spot: a broken or constant model
NOT_RUN = "not_run"  # crowd / no body keypoints / teacher not selected / image failed
PART_STATUSES = (
    ACCEPTED,
    NO_PROPOSAL,
    NO_DETECTION,
    LOW_CONFIDENCE,
    OUTSIDE_PROPOSAL,
    HANDEDNESS_MISMATCH,
    FAR_FROM_WRIST,
    FAR_FROM_ANKLE,
    TOO_FEW_POINTS,
    DEGENERATE,
    NOT_RUN,
)
