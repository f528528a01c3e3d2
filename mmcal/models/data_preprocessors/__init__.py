from .attention_crop_drop import AttentionCropDrop

__all__ = ['AttentionCropDrop']
