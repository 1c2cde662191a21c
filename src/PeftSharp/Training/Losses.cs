using PeftSharp.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Training;

/// <summary>Computes the (mean) training loss of one batch, running the model's forward itself. Returns a 0-d tensor.</summary>
public delegate Tensor BatchLoss(Batch batch);

/// <summary>The loss functions transformers uses, on logits the caller computed.</summary>
public static class Losses
{
    /// <summary>Label value that takes no loss (PyTorch's and transformers' <c>ignore_index</c>).</summary>
    public const long IgnoreIndex = -100;

    /// <summary>
    /// transformers' causal-LM loss (<c>ForCausalLMLoss</c>): the logits at position t predict the label at t + 1, so
    /// <c>logits[:, :-1]</c> <c>[B, T-1, V]</c> are scored against <c>labels[:, 1:]</c>, in float32, by cross-entropy averaged
    /// over the targets that are not <see cref="IgnoreIndex"/>. With no such target the result is NaN, as in PyTorch.
    /// </summary>
    public static Tensor CausalLm(Tensor logits, Tensor labels)
    {
        if (logits.dim() != 3 || labels.dim() != 2 || logits.shape[0] != labels.shape[0] || logits.shape[1] != labels.shape[1])
        {
            throw new PeftException($"causal-LM loss: logits must be [B, T, V] and labels [B, T], got [{string.Join(", ", logits.shape)}] and [{string.Join(", ", labels.shape)}]");
        }
        using var scope = torch.NewDisposeScope();
        var vocab = logits.shape[2];
        var shifted = logits[.., ..^1, ..].to_type(ScalarType.Float32).reshape(-1, vocab);
        var targets = labels[.., 1..].to(logits.device).reshape(-1);
        return nn.functional.cross_entropy(shifted, targets, ignore_index: IgnoreIndex).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// transformers' single-label sequence-classification loss: cross-entropy of <paramref name="logits"/> <c>[B, C]</c>
    /// (in float32) against class indices <paramref name="classLabels"/> <c>[B]</c>, averaged over the batch.
    /// </summary>
    public static Tensor SequenceClassification(Tensor logits, Tensor classLabels)
    {
        if (logits.dim() != 2 || classLabels.dim() != 1 || logits.shape[0] != classLabels.shape[0])
        {
            throw new PeftException($"classification loss: logits must be [B, C] and labels [B], got [{string.Join(", ", logits.shape)}] and [{string.Join(", ", classLabels.shape)}]");
        }
        using var scope = torch.NewDisposeScope();
        return nn.functional.cross_entropy(logits.to_type(ScalarType.Float32), classLabels.to(logits.device), ignore_index: IgnoreIndex)
            .MoveToOuterDisposeScope();
    }
}

/// <summary>Ready-made <see cref="BatchLoss"/> functions for the Hugging Face models.</summary>
public static class Objectives
{
    /// <summary>
    /// The loss the model's task calls for: causal-LM loss on <see cref="Batch.Labels"/> for a causal LM, classification
    /// cross-entropy on <see cref="Batch.ClassLabels"/> for a sequence classifier.
    /// </summary>
    public static BatchLoss For(PretrainedModel model) => model.Task switch
    {
        ModelTask.CausalLM => CausalLm(model),
        ModelTask.SequenceClassification => SequenceClassification(model),
        _ => throw new PeftException($"{model.Architecture} is a bare encoder ({model.Task}); it has no training loss. Load it with a head (e.g. BertForSequenceClassification)"),
    };

    /// <summary>Forward with ids, mask and token types, then <see cref="Losses.CausalLm"/> on <see cref="Batch.Labels"/>.</summary>
    public static BatchLoss CausalLm(PretrainedModel model) => batch =>
    {
        var labels = batch.Labels ?? throw new PeftException("causal-LM training needs Batch.Labels (use the input ids with padding set to -100)");
        using var scope = torch.NewDisposeScope();
        var output = model.Forward(batch.InputIds, batch.AttentionMask, batch.TokenTypeIds);
        return Losses.CausalLm(output.Logits, labels).MoveToOuterDisposeScope();
    };

    /// <summary>Forward, then <see cref="Losses.SequenceClassification"/> on <see cref="Batch.ClassLabels"/>.</summary>
    public static BatchLoss SequenceClassification(PretrainedModel model) => batch =>
    {
        var labels = batch.ClassLabels ?? throw new PeftException("sequence-classification training needs Batch.ClassLabels ([B] class indices)");
        using var scope = torch.NewDisposeScope();
        var output = model.Forward(batch.InputIds, batch.AttentionMask, batch.TokenTypeIds);
        return Losses.SequenceClassification(output.Logits, labels).MoveToOuterDisposeScope();
    };
}
