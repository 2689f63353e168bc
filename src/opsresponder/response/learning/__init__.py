"""Learning from outcomes and feedback (docs/response.md "Feedback and learning"): execution scores,
feedback as pseudo-outcomes, demotion and promotion of template actions."""

from opsresponder.response.learning.feedback import (
    FeedbackAnswer,
    FeedbackMismatch,
    FeedbackNotFound,
    FeedbackService,
    GivenFeedback,
)
from opsresponder.response.learning.policies import PolicyBook
from opsresponder.response.learning.service import Learning

__all__ = [
    "FeedbackAnswer",
    "FeedbackMismatch",
    "FeedbackNotFound",
    "FeedbackService",
    "GivenFeedback",
    "Learning",
    "PolicyBook",
]
