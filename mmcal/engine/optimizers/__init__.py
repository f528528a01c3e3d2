from .finite_loss_optim_wrapper import FiniteLossOptimWrapper

__all__ = ['FiniteLossOptimWrapper']
