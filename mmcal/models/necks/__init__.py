from .bap_neck import BAPNeck

__all__ = ['BAPNeck']
