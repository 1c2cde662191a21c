using System.Globalization;

namespace PeftSharp.Training;

/// <summary>
/// Checkpoint folders <c>&lt;output&gt;/checkpoint-&lt;step&gt;/</c>, each written whole or not at all: the content goes into
/// a hidden temp folder that is renamed into place at the end. A checkpoint holds everything a resume needs
/// (see <see cref="Trainer.SaveCheckpoint"/>): <c>adapter/</c> (PEFT files), <c>trainable.safetensors</c>,
/// <c>optimizer.safetensors</c>, <c>rng.safetensors</c> and <c>trainer_state.json</c>.
/// </summary>
public static class Checkpoints
{
    public const string Prefix = "checkpoint-";
    public const string AdapterFolder = "adapter";
    public const string TrainableFile = "trainable.safetensors";
    public const string OptimizerFile = "optimizer.safetensors";
    public const string RngFile = "rng.safetensors";
    public const string StateFile = "trainer_state.json";

    private const string TempPrefix = ".tmp-" + Prefix;

    /// <summary>
    /// Creates <c>checkpoint-&lt;step&gt;</c> in <paramref name="outputDirectory"/>: <paramref name="fill"/> writes into an empty
    /// temp folder, which is then renamed. An existing checkpoint of the same step (from a run resumed earlier) is
    /// replaced. If <paramref name="fill"/> throws, nothing appears and the temp folder is removed.
    /// </summary>
    public static string Write(string outputDirectory, long step, Action<string> fill)
    {
        Directory.CreateDirectory(outputDirectory);
        var final = Path.Combine(outputDirectory, Prefix + step.ToString(CultureInfo.InvariantCulture));
        var temp = Path.Combine(outputDirectory, $"{TempPrefix}{step}.{Guid.NewGuid():N}");
        Directory.CreateDirectory(temp);
        try
        {
            fill(temp);
            if (Directory.Exists(final))
            {
                // Rename the stale one aside first so the final name is empty for the shortest possible time.
                var stale = Path.Combine(outputDirectory, $"{TempPrefix}{step}.stale.{Guid.NewGuid():N}");
                Directory.Move(final, stale);
                Directory.Move(temp, final);
                Directory.Delete(stale, recursive: true);
            }
            else
            {
                Directory.Move(temp, final);
            }
        }
        finally
        {
            if (Directory.Exists(temp))
            {
                Directory.Delete(temp, recursive: true);
            }
        }
        return final;
    }

    /// <summary>The complete checkpoints in <paramref name="outputDirectory"/>, oldest step first (temp folders are ignored).</summary>
    public static IReadOnlyList<(long Step, string Path)> List(string outputDirectory)
    {
        if (!Directory.Exists(outputDirectory))
        {
            return [];
        }
        var result = new List<(long, string)>();
        foreach (var dir in Directory.EnumerateDirectories(outputDirectory, Prefix + "*"))
        {
            var name = System.IO.Path.GetFileName(dir);
            if (long.TryParse(name.AsSpan(Prefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out var step)
                && File.Exists(System.IO.Path.Combine(dir, StateFile)))
            {
                result.Add((step, dir));
            }
        }
        return [.. result.OrderBy(c => c.Item1)];
    }

    /// <summary>The newest checkpoint folder, or null when there is none.</summary>
    public static string? Latest(string outputDirectory) => List(outputDirectory) is { Count: > 0 } all ? all[^1].Path : null;

    /// <summary>Deletes all but the newest <paramref name="keepLast"/> checkpoints and the one at <paramref name="keepStep"/>; also leftover temp folders.</summary>
    public static void Prune(string outputDirectory, int keepLast, long? keepStep)
    {
        var all = List(outputDirectory);
        for (var i = 0; i < all.Count - keepLast; i++)
        {
            if (all[i].Step != keepStep)
            {
                Directory.Delete(all[i].Path, recursive: true);
            }
        }
        foreach (var dir in Directory.EnumerateDirectories(outputDirectory, TempPrefix + "*"))
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
