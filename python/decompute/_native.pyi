from typing import List, Optional, Tuple

__version__: str

class Tracker:
    def __init__(
        self,
        project: Optional[str] = ...,
        tags: Optional[List[Tuple[str, str]]] = ...,
        ledger: Optional[str] = ...,
        record: bool = ...,
        interval: float = ...,
        budget: Optional[str] = ...,
        zone: Optional[str] = ...,
        pue: Optional[str] = ...,
        command: Optional[List[str]] = ...,
    ) -> None: ...
    def start(self) -> None: ...
    def exceeded(self) -> Optional[str]: ...
    def energy_j(self) -> float: ...
    @property
    def id(self) -> Optional[str]: ...
    @property
    def nested(self) -> bool: ...
    def stop(self, failed: bool = ...) -> Tuple[str, Optional[str]]: ...

def estimate(args: List[str]) -> str: ...
def codecarbon_row(report_json: str, tracking_mode: str) -> Tuple[List[str], List[str]]: ...
def parse_budget(text: str) -> List[Tuple[str, float]]: ...

class Api:
    def __init__(
        self,
        project: Optional[str] = ...,
        tags: Optional[List[Tuple[str, str]]] = ...,
        ledger: Optional[str] = ...,
        record: bool = ...,
        zone: Optional[str] = ...,
        pue: Optional[str] = ...,
    ) -> None: ...
    @property
    def project(self) -> str: ...
    @property
    def ledger(self) -> Optional[str]: ...
    def request(
        self,
        request_json: str,
        tags: Optional[List[Tuple[str, str]]] = ...,
        record: bool = ...,
    ) -> str: ...
    def exceeded(self, project: Optional[str] = ...) -> Optional[Tuple[str, str]]: ...
