"""The student stage: a YOLO-seg model (Ultralytics, AGPL-3.0, optional extra ``afss[student]``)
trained on pseudo-labels, exported to ONNX, and usable as a teacher.

Nothing here imports Ultralytics until it is needed (`afss.student.env.ultralytics`).
"""

from afss.student.dataset import YoloDataset, export_yolo
from afss.student.export import export_student
from afss.student.model import StudentTeacher
from afss.student.pretrain import pretrain_student
from afss.student.train import TrainConfig, TrainResult, train_student

__all__ = ["StudentTeacher", "TrainConfig", "TrainResult", "YoloDataset", "export_student", "export_yolo",
           "pretrain_student", "train_student"]
