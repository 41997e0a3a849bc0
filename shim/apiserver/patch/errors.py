"""The one error every patch kind raises."""


class PatchError(ValueError):
    """A patch that cannot be applied; `code` is the HTTP status kube-apiserver answers with.

    400 BadRequest for malformed patches, 422 Invalid for patches that do not apply to the object,
    500 InternalError for the strategic-merge errors kube-apiserver passes through unclassified.
    """

    def __init__(self, message: str, code: int = 400) -> None:
        super().__init__(message)
        self.code = code
