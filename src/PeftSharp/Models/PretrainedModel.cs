using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Models;

/// <summary>
/// A Hugging Face model built in TorchSharp with transformers' module and parameter names, so that checkpoints and PEFT
/// adapters apply name for name. Every child an adapter may target is a non-readonly field typed
/// <c>nn.Module&lt;Tensor, Tensor&gt;</c> carrying the Hugging Face name, and forwards always call through the field,
/// so an injector can replace it (and re-register it) without other bookkeeping.
/// </summary>
public abstract class PretrainedModel : nn.Module<ModelInput, ModelOutput>
{
    protected PretrainedModel(string name, ModelConfig config) : base(name)
    {
        Config = config;
    }

    /// <summary>The config the model was built from.</summary>
    public ModelConfig Config { get; }

    /// <summary>What <see cref="ModelOutput.Logits"/> hold.</summary>
    public abstract ModelTask Task { get; }

    /// <summary>transformers' class name, e.g. <c>LlamaForCausalLM</c>.</summary>
    public abstract string Architecture { get; }

    /// <summary>
    /// Qualified names of the output heads (<c>lm_head</c>, <c>score</c>, <c>classifier</c>): PEFT's
    /// <c>all-linear</c> leaves them out. Empty for a bare encoder.
    /// </summary>
    public abstract IReadOnlyList<string> OutputHeadNames { get; }

    /// <summary>Number of decoder/encoder layers.</summary>
    public abstract int NumLayers { get; }

    /// <summary>What <see cref="AutoModel.FromPretrained"/> did beyond copying tensors; null for a model from <see cref="AutoModel.FromConfig"/>.</summary>
    public LoadReport? LoadReport { get; internal set; }

    /// <summary>
    /// transformers' <c>base_model_prefix</c> (<c>model</c>, <c>transformer</c>, <c>bert</c>): a checkpoint saved from
    /// the bare base model lacks it, one saved with a head has it (transformers adds or strips it when loading).
    /// </summary>
    protected internal abstract string BaseModelPrefix { get; }

    /// <summary>True when this model is the bare base model (its parameter names do not start with the prefix).</summary>
    protected internal virtual bool IsBaseModel => false;

    /// <summary>Checkpoint keys (in the model's naming) that are not parameters and are skipped, e.g. stored causal-mask buffers.</summary>
    protected internal virtual bool IsIgnorableCheckpointKey(string key) => false;

    /// <summary>Runs the model; see <see cref="ModelInput"/> for the shapes.</summary>
    public ModelOutput Forward(Tensor inputIds, Tensor? attentionMask = null, Tensor? tokenTypeIds = null, Tensor? positionIds = null, KvCache? cache = null)
    {
        return call(new ModelInput(inputIds, attentionMask, tokenTypeIds, positionIds, cache));
    }

    /// <summary>An empty KV cache sized for this model; decoder models only.</summary>
    public virtual KvCache CreateCache() => new(NumLayers);

    /// <summary>Rejects ids outside <c>[0, vocab)</c> and non-2-D inputs before they reach an embedding lookup.</summary>
    protected void ValidateInputIds(Tensor inputIds, long vocabSize)
    {
        if (inputIds.dim() != 2)
        {
            throw new PeftException($"{Architecture}: input_ids must be [batch, seq], got [{string.Join(", ", inputIds.shape)}]");
        }
        if (inputIds.dtype is not (ScalarType.Int64 or ScalarType.Int32))
        {
            throw new PeftException($"{Architecture}: input_ids must be int64 (or int32), got {inputIds.dtype}");
        }
        if (inputIds.numel() == 0)
        {
            throw new PeftException($"{Architecture}: input_ids is empty [{string.Join(", ", inputIds.shape)}]");
        }
        var min = inputIds.min().item<long>();
        var max = inputIds.max().item<long>();
        if (min < 0 || max >= vocabSize)
        {
            throw new PeftException($"{Architecture}: token id {(min < 0 ? min : max)} is outside the vocabulary [0, {vocabSize})");
        }
    }

    /// <summary>Default position ids: <c>past .. past+T-1</c> in every row, int64 <c>[B, T]</c>.</summary>
    protected static Tensor DefaultPositions(long batch, long length, long past, Device device)
    {
        return torch.arange(past, past + length, dtype: ScalarType.Int64, device: device).unsqueeze(0).expand(batch, length);
    }

    /// <summary>Checks user position ids <c>[B, T]</c> against the position table size (0 = unbounded, e.g. RoPE).</summary>
    protected void ValidatePositions(Tensor positionIds, long batch, long length, long maxPositions)
    {
        if (positionIds.dim() != 2 || positionIds.shape[1] != length || (positionIds.shape[0] != batch && positionIds.shape[0] != 1))
        {
            throw new PeftException(
                $"{Architecture}: position_ids is [{string.Join(", ", positionIds.shape)}]; expected [{batch}, {length}]");
        }
        var min = positionIds.min().item<long>();
        var max = positionIds.max().item<long>();
        if (min < 0 || (maxPositions > 0 && max >= maxPositions))
        {
            throw new PeftException(
                $"{Architecture}: position {(min < 0 ? min : max)} is outside [0, {(maxPositions > 0 ? maxPositions.ToString() : "∞")}) (max_position_embeddings)");
        }
    }
}
