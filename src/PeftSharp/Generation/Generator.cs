using PeftSharp.Models;
using PeftSharp.Models.Common;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Generation;

/// <summary>
/// Autoregressive decoding with a <see cref="KvCache"/> for a causal LM: prompts of different lengths are left-padded
/// into one batch (positions from the mask, as transformers' <c>generate</c>), the prompt is run once, then one token
/// per step. Works from token ids; tokenisation is the caller's. Runs under <c>no_grad</c> and does not change the
/// model's train/eval mode.
/// </summary>
public sealed class Generator
{
    private readonly PretrainedModel _model;

    /// <summary>A generator over <paramref name="model"/>, which must be a causal LM.</summary>
    public Generator(PretrainedModel model)
    {
        if (model.Task != ModelTask.CausalLM)
        {
            throw new PeftException($"Generator needs a causal LM; {model.Architecture} is {model.Task}");
        }
        _model = model;
    }

    /// <summary>Generates for one prompt; returns the new tokens (a stop token included when one ended it).</summary>
    public IReadOnlyList<int> Generate(IReadOnlyList<int> prompt, GenerationOptions options) =>
        Generate([prompt], options)[0];

    /// <summary>
    /// Generates for each prompt in one left-padded batch; returns each row's new tokens (a stop token included when
    /// one ended it). <paramref name="onToken"/>, when given, sees every (row, token) as it is chosen.
    /// </summary>
    public IReadOnlyList<IReadOnlyList<int>> Generate(IReadOnlyList<IReadOnlyList<int>> prompts, GenerationOptions options, Action<int, int>? onToken = null)
    {
        options.Validate();
        if (prompts.Count == 0 || prompts.Any(p => p.Count == 0))
        {
            throw new PeftException("Generator: every prompt needs one token or more (e.g. BOS)");
        }
        var batch = prompts.Count;
        var outputs = Enumerable.Range(0, batch).Select(_ => new List<int>()).ToArray();
        if (options.MaxNewTokens == 0)
        {
            return outputs;
        }

        var device = _model.parameters().First().device;
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        using var cache = _model.CreateCache();
        var (ids, mask) = LeftPad(prompts, options.PadTokenId, device);
        var positions = AttentionMasks.PositionIdsFromMask(mask);
        var vocab = -1L;
        Tensor? seen = null;
        using var random = options.DoSample ? new torch.Generator((ulong)(options.Seed ?? Random.Shared.NextInt64()), device) : null;
        var finished = new bool[batch];
        var stop = options.EosTokenIds.ToHashSet();

        var logits = LastLogits(ids, mask, positions, cache);
        for (var step = 0; step < options.MaxNewTokens; step++)
        {
            using var stepScope = torch.NewDisposeScope();
            if (seen is null)
            {
                vocab = logits.shape[1];
                seen = torch.zeros([batch, vocab], dtype: ScalarType.Bool, device: device);
                // Prompt tokens count for the repetition penalty; left padding does not.
                seen.scatter_(1, ids.masked_fill(mask.eq(0), 0), mask.ne(0));
                seen.MoveToOuterDisposeScope();
            }
            var next = Choose(logits, seen, options, random);
            var chosen = next.to(CPU).data<long>().ToArray();
            for (var row = 0; row < batch; row++)
            {
                if (finished[row])
                {
                    chosen[row] = options.PadTokenId;
                    continue;
                }
                var token = (int)chosen[row];
                outputs[row].Add(token);
                onToken?.Invoke(row, token);
                finished[row] = stop.Contains(token) || options.StopWhen?.Invoke(row, outputs[row]) == true;
            }
            if (finished.All(f => f) || step == options.MaxNewTokens - 1)
            {
                break;
            }
            var nextIds = torch.tensor(chosen, [batch, 1], ScalarType.Int64, device);
            seen.scatter_(1, nextIds, torch.ones([batch, 1], dtype: ScalarType.Bool, device: device));
            var newMask = torch.cat([mask, torch.ones([batch, 1], dtype: mask.dtype, device: device)], 1).MoveToOuterDisposeScope();
            var newPositions = (positions.narrow(1, positions.shape[1] - 1, 1) + 1).MoveToOuterDisposeScope();
            mask.Dispose();
            positions.Dispose();
            mask = newMask;
            positions = newPositions;
            var newLogits = LastLogits(nextIds, mask, positions, cache).MoveToOuterDisposeScope();
            logits.Dispose();
            logits = newLogits;
        }
        return outputs;
    }

    private Tensor LastLogits(Tensor ids, Tensor mask, Tensor positions, KvCache cache)
    {
        using var scope = torch.NewDisposeScope();
        var logits = _model.Forward(ids, mask, positionIds: positions.narrow(1, positions.shape[1] - ids.shape[1], ids.shape[1]), cache: cache).Logits;
        return logits.select(1, logits.shape[1] - 1).to_type(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    private static Tensor Choose(Tensor logits, Tensor seen, GenerationOptions o, torch.Generator? random)
    {
        using var scope = torch.NewDisposeScope();
        var scores = logits;
        if (o.RepetitionPenalty != 1.0)
        {
            scores = LogitsProcessing.RepetitionPenalty(scores, seen, o.RepetitionPenalty);
        }
        if (!o.DoSample)
        {
            return scores.argmax(-1).MoveToOuterDisposeScope();
        }
        if (o.Temperature != 1.0)
        {
            scores = scores / o.Temperature;
        }
        if (o.TopK > 0)
        {
            scores = LogitsProcessing.TopK(scores, o.TopK);
        }
        if (o.TopP < 1.0)
        {
            scores = LogitsProcessing.TopP(scores, o.TopP);
        }
        if (o.MinP > 0)
        {
            scores = LogitsProcessing.MinP(scores, o.MinP);
        }
        return torch.multinomial(scores.softmax(-1), 1, generator: random).squeeze(1).MoveToOuterDisposeScope();
    }

    private static (Tensor Ids, Tensor Mask) LeftPad(IReadOnlyList<IReadOnlyList<int>> prompts, int pad, Device device)
    {
        var length = prompts.Max(p => p.Count);
        var ids = new long[prompts.Count * length];
        var mask = new long[prompts.Count * length];
        for (var row = 0; row < prompts.Count; row++)
        {
            var offset = length - prompts[row].Count;
            for (var t = 0; t < length; t++)
            {
                var real = t >= offset;
                ids[row * length + t] = real ? prompts[row][t - offset] : pad;
                mask[row * length + t] = real ? 1 : 0;
            }
        }
        return (torch.tensor(ids, [prompts.Count, length], ScalarType.Int64, device),
                torch.tensor(mask, [prompts.Count, length], ScalarType.Int64, device));
    }
}
