"""The `anthropic` backend: Claude fine-tuned through Amazon Bedrock's model customization jobs (boto3), queried
through the anthropic SDK — `AnthropicBedrock` for Bedrock models (base or custom), `Anthropic` for Claude models
named the Anthropic API's way (e.g. `claude-3-5-haiku-latest`, also usable as a judge).

AWS credentials come from boto3's usual chain (environment, profile, role); the Anthropic API key from
ANTHROPIC_API_KEY. Neither is ever read from the job file.
"""
