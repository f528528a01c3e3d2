from .bap_neck import BAPNeck, BAPOutput

__all__ = ['BAPNeck', 'BAPOutput']
