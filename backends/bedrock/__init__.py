"""The `bedrock` backend (also registered as `anthropic`, its first name): Amazon Bedrock model customization for
every model family fto's data can serve — Anthropic Claude, Amazon Nova and Meta Llama — through boto3, and
inference through each family's runtime: Claude through the anthropic SDK (`AnthropicBedrock`, or `Anthropic` for
models named the Anthropic API's way), Nova and Llama through Bedrock's Converse API.

AWS credentials come from boto3's usual chain (environment, profile, role); the Anthropic API key from
ANTHROPIC_API_KEY. Neither is ever read from the job file.
"""
