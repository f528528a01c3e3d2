from .load_image import LoadImageSafely, pil_to_bgr

__all__ = ['LoadImageSafely', 'pil_to_bgr']
