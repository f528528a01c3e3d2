from .cal_head import CALHead, feature_center_update

__all__ = ['CALHead', 'feature_center_update']
