"""Survey flows: definitions as YAML data, and the pure state machine that runs them."""

from ivr_flows.engine import Flow, FlowError, FlowState, Question, QuestionType
from ivr_flows.loader import default_flows, load_flows, parse_flow

__all__ = [
    "Flow",
    "FlowError",
    "FlowState",
    "Question",
    "QuestionType",
    "default_flows",
    "load_flows",
    "parse_flow",
]
