from .cal_head import CALHead, feature_center_update_

__all__ = ['CALHead', 'feature_center_update_']
