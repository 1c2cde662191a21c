using TorchSharp;

namespace PeftSharp.Models;

/// <summary>How <see cref="AutoModel"/> builds and loads a model.</summary>
public sealed record ModelLoadOptions
{
    /// <summary>Device for every parameter; null means the CPU.</summary>
    public torch.Device? Device { get; init; }

    /// <summary>Parameter dtype (F32, F16 or BF16); checkpoint tensors are converted to it while loading.</summary>
    public torch.ScalarType DType { get; init; } = torch.ScalarType.Float32;

    /// <summary>
    /// Build this architecture instead of <c>config.json</c>'s <c>architectures[0]</c>, e.g.
    /// <c>BertForSequenceClassification</c> over a bare <c>BertModel</c> checkpoint (transformers'
    /// <c>AutoModelForSequenceClassification.from_pretrained</c>).
    /// </summary>
    public string? Architecture { get; init; }

    /// <summary>Overrides the config's label count for classification heads (transformers' <c>num_labels=</c>).</summary>
    public int? NumLabels { get; init; }

    /// <summary>
    /// Accept a checkpoint that lacks the output head's tensors (<see cref="PretrainedModel.OutputHeadNames"/>): the head
    /// keeps its random init and is listed in <see cref="LoadReport.NewlyInitialized"/>, as transformers reports
    /// "newly initialized" weights. Off by default: any missing tensor is an error.
    /// </summary>
    public bool AllowNewHead { get; init; }

    /// <summary>
    /// Turn on <see cref="PretrainedModel.GradientCheckpointing"/> (per-layer recompute in the backward) on the model
    /// <see cref="AutoModel"/> builds. Off by default.
    /// </summary>
    public bool GradientCheckpointing { get; init; }
}

/// <summary>What the model's <see cref="ModelOutput.Logits"/> mean.</summary>
public enum ModelTask
{
    /// <summary>Next-token logits <c>[B, T, vocab]</c>.</summary>
    CausalLM,

    /// <summary>One row of class logits per sequence, <c>[B, num_labels]</c>.</summary>
    SequenceClassification,

    /// <summary>A bare encoder: the logits are the last hidden state <c>[B, T, hidden]</c>.</summary>
    Encoder,
}

/// <summary>
/// Input of <see cref="PretrainedModel"/>: token ids <c>[B, T]</c> (int64), optional attention mask <c>[B, T]</c>
/// (1 = token, 0 = padding; with a KV cache it covers past + new positions, <c>[B, cache.Length + T]</c>), token type
/// ids <c>[B, T]</c> (BERT; GPT-2 adds their <c>wte</c> embedding; the Llama family ignores them), position ids <c>[B, T]</c>, and an optional <see cref="KvCache"/> that the forward
/// extends.
/// </summary>
public sealed record ModelInput(
    torch.Tensor InputIds,
    torch.Tensor? AttentionMask = null,
    torch.Tensor? TokenTypeIds = null,
    torch.Tensor? PositionIds = null,
    KvCache? Cache = null);

/// <summary>
/// Output of <see cref="PretrainedModel"/>: <see cref="Logits"/> as described by <see cref="ModelTask"/>, the final
/// hidden state <c>[B, T, hidden]</c> (after the final norm), and for BERT the pooler output <c>[B, hidden]</c>.
/// </summary>
public sealed record ModelOutput(torch.Tensor Logits, torch.Tensor? LastHiddenState = null, torch.Tensor? PooledOutput = null);

/// <summary>What a checkpoint load did beyond a name-for-name copy.</summary>
/// <param name="Source">The folder loaded.</param>
/// <param name="LoadedTensors">Number of checkpoint tensors copied into the model.</param>
/// <param name="NewlyInitialized">Model parameters left at their init (only with <see cref="ModelLoadOptions.AllowNewHead"/>).</param>
/// <param name="IgnoredKeys">Checkpoint keys deliberately skipped (e.g. GPT-2's stored causal-mask buffers, a tied <c>lm_head.weight</c>).</param>
public sealed record LoadReport(string Source, int LoadedTensors, IReadOnlyList<string> NewlyInitialized, IReadOnlyList<string> IgnoredKeys);
