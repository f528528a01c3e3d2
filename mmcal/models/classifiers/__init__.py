from .cal_classifier import CALClassifier

__all__ = ['CALClassifier']
