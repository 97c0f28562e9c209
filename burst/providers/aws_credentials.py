"""AWS session and credentials: the standard boto3 chain, and one clear message when it fails."""

from __future__ import annotations

import boto3
from botocore.exceptions import (
    ClientError,
    CredentialRetrievalError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    SSOError,
    TokenRetrievalError,
    UnauthorizedSSOTokenError,
)

from burst.errors import BurstError, UserError, credentials_expired
from burst.retry import credentials_expired as expired
from burst.providers.aws_names import _BAD_CREDENTIAL_CODES, CLIENT_CONFIG, DEFAULT_REGION, _code, _message


def credentials_help(detail: str, profile: str | None = None) -> UserError:
    which = f"the AWS profile {profile!r}" if profile else "the default AWS credentials"
    return UserError(
        f"No usable AWS credentials ({detail}) with {which}. burst uses the standard AWS "
        "credential chain: run `aws configure` to store access keys, or `aws sso login "
        "--profile NAME` for IAM Identity Center (SSO) and then pass `--profile NAME` (or set "
        "AWS_PROFILE=NAME); if the keys are in the environment, check AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary keys). `aws sts "
        "get-caller-identity` must work before burst can."
    )


def make_session(region: str | None = None, profile: str | None = None) -> boto3.session.Session:
    try:
        session = boto3.session.Session(profile_name=profile or None, region_name=region or None)
    except ProfileNotFound:
        raise UserError(
            f"The AWS profile {profile!r} is not in your AWS config (~/.aws/config or "
            "~/.aws/credentials). Create it with `aws configure --profile NAME` or `aws configure "
            "sso`, or pass the name of an existing profile with --profile."
        ) from None
    if not session.region_name:
        session = boto3.session.Session(profile_name=profile or None, region_name=DEFAULT_REGION)
    return session


def check_credentials(session: boto3.session.Session, profile: str | None = None) -> dict[str, str]:
    """``sts get-caller-identity``: account, ARN, partition; a UserError when credentials fail."""
    try:
        identity = session.client("sts", config=CLIENT_CONFIG).get_caller_identity()
    except NoCredentialsError:
        raise credentials_help("none were found", profile) from None
    except PartialCredentialsError as error:
        raise credentials_help(f"incomplete: {error}", profile) from None
    except (UnauthorizedSSOTokenError, TokenRetrievalError) as error:
        raise BurstError(credentials_expired(f"the SSO session: {error}")) from None
    except SSOError as error:
        raise credentials_help(f"the SSO session is missing: {error}", profile) from None
    except CredentialRetrievalError as error:
        raise credentials_help(str(error), profile) from None
    except ClientError as error:
        if expired(error):
            raise BurstError(credentials_expired(f"{_code(error)}: {_message(error)}")) from None
        if _code(error) in _BAD_CREDENTIAL_CODES:
            raise credentials_help(f"AWS refused them: {_code(error)}: {_message(error)}", profile) from None
        raise
    arn = identity.get("Arn", "")
    partition = arn.split(":")[1] if arn.count(":") >= 2 else "aws"
    return {"account": identity.get("Account", ""), "arn": arn, "partition": partition or "aws"}

