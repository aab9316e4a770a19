from proto.observer import observer_pb2 as _observer_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FlowBatch(_message.Message):
    __slots__ = ("responses",)
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    responses: _containers.RepeatedCompositeFieldContainer[_observer_pb2.GetFlowsResponse]
    def __init__(self, responses: _Optional[_Iterable[_Union[_observer_pb2.GetFlowsResponse, _Mapping]]] = ...) -> None: ...
