"""Content encoders (word, text, image) and auxiliary objectives, looked up by name in a registry."""
from emoembed.encoders.base import (AuxiliaryObjective, ContentEncoder, StepContext, encoder_class, objective_class,
                                    register_encoder, register_objective)

__all__ = ["AuxiliaryObjective", "ContentEncoder", "StepContext", "encoder_class", "objective_class",
           "register_encoder", "register_objective"]
