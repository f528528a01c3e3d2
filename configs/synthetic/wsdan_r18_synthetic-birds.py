# WS-DAN on the synthetic birds: CAL without the effect loss (same
# attention, augmentation, centre loss and schedule).
_base_ = ['../cal_r18_synthetic-birds.py']

model = dict(head=dict(loss_weights=dict(effect=0.0)))
