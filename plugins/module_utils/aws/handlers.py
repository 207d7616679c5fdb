# -*- coding: utf-8 -*-

# Copyright: Contributors to the kubecluster.aws project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""amazon.aws error handlers for the services amazon.aws has none for, made the one way.

An AWSErrorHandler subclass turns botocore errors into an AnsibleAWSError naming the operation;
its ``_is_missing`` says which error means "not there" to ``list_error_handler`` (None or [])
and ``deletion_error_handler`` (already gone).
"""

from typing import Any, Callable

from ansible_collections.amazon.aws.plugins.module_utils.errors import AWSErrorHandler


def error_handler(name: str, exception: type, is_missing: Callable[[], Any]) -> Any:
    """An AWSErrorHandler subclass called ``name`` raising ``exception``; ``is_missing()`` is an
    amazon.aws matcher such as ``lambda: is_boto3_error_code("ParameterNotFound")``."""

    def missing(cls: type) -> Any:
        return is_missing()

    return type(name, (AWSErrorHandler,), {"_CUSTOM_EXCEPTION": exception, "_is_missing": classmethod(missing)})
